"""Job records: what the state store keeps about one job (SPEC §7).

A record moves ``PENDING → PROCESSING → COMPLETED | FAILED``. ``attempts``
counts claims (a worker killed mid-job used one); ``next_attempt_at`` is when a
PENDING job may run next (backoff); ``lease_until``/``lease_token`` belong to
the worker holding a PROCESSING job, which renews the lease while it works.
A lease past its end means the worker died: the reaper puts the job back to
PENDING (or FAILED once ``attempts`` reached ``max_attempts``).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


#: Statuses of a job that has not ended.
ACTIVE = (JobStatus.PENDING, JobStatus.PROCESSING)
#: Statuses of a job that has ended (pruned after the retention).
FINISHED = (JobStatus.COMPLETED, JobStatus.FAILED)

#: Kinds a user may request with ``POST /process/{id}``.
USER_KINDS = ("index", "sha256")

#: Queue priority by tier (higher runs first).
TIER_PRIORITY = {"admin": 10, "premium": 10, "basic": 0}


def priority_of(tier: str) -> int:
    """The queue priority of a job owned by a user of ``tier``."""
    return TIER_PRIORITY.get(tier, 0)


def new_job_id() -> str:
    return uuid.uuid4().hex


def backoff(attempts: int, base: float, cap: float) -> float:
    """Seconds before retry number ``attempts`` (1-based): ``base * 2**(attempts-1)``, capped."""
    return float(min(cap, base * (2 ** max(0, attempts - 1))))


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job. ``payload`` is kind-specific input, ``result`` its output."""

    job_id: str
    file_id: str
    kind: str
    owner: str = ""
    status: JobStatus = JobStatus.PENDING
    priority: int = 0
    attempts: int = 0
    max_attempts: int = 5
    error: str | None = None
    result: dict[str, Any] | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    next_attempt_at: float | None = None
    lease_until: float | None = None
    lease_token: str | None = None

    def replace(self, **changes: Any) -> JobRecord:
        return dataclasses.replace(self, **changes)

    def to_row(self) -> dict[str, Any]:
        """Flat column values (JSON text for the dict fields)."""
        row = dataclasses.asdict(self)
        row["status"] = self.status.value
        row["result"] = None if self.result is None else json.dumps(self.result)
        row["payload"] = json.dumps(self.payload)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> JobRecord:
        """Inverse of :meth:`to_row` (also accepts Redis' all-text hashes)."""

        def num(key: str, kind: type[float] | type[int]) -> Any:
            value = row.get(key)
            return None if value in (None, "") else kind(value)

        result = row.get("result")
        return cls(
            job_id=str(row["job_id"]),
            file_id=str(row["file_id"]),
            kind=str(row["kind"]),
            owner=str(row.get("owner") or ""),
            status=JobStatus(row["status"]),
            priority=int(row.get("priority") or 0),
            attempts=int(row.get("attempts") or 0),
            max_attempts=int(row.get("max_attempts") or 1),
            error=(row.get("error") or None),
            result=None if result in (None, "") else json.loads(result),
            payload=json.loads(row.get("payload") or "{}"),
            created_at=float(row.get("created_at") or 0.0),
            updated_at=float(row.get("updated_at") or 0.0),
            next_attempt_at=num("next_attempt_at", float),
            lease_until=num("lease_until", float),
            lease_token=(row.get("lease_token") or None),
        )

    def view(self, iso: Any) -> dict[str, Any]:
        """The API document of ``GET /jobs/{id}`` (``iso`` formats timestamps)."""
        return {
            "job_id": self.job_id,
            "file_id": self.file_id,
            "kind": self.kind,
            "status": self.status.value,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "error": self.error,
            "result": self.result,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "next_attempt_at": iso(self.next_attempt_at) if self.status is JobStatus.PENDING else None,
        }
