"""The one guard of :meth:`StateStore.commit_offset`, shared by every store.

:class:`OffsetCommit` decides whether an offset commit is accepted. Its rules:

1. an offset never moves backwards: ``new < expected`` is refused with
   ``ValueError`` before any store is read (a caller bug, not a race);
2. the record must exist: :class:`errors.UploadNotFound` otherwise;
3. the stored record must still hold every value in :attr:`OffsetCommit.requires`
   (today: ``offset == expected``): :class:`errors.OffsetMismatch` otherwise.

Rule 3 is expressed once, as data (field -> required value), so that each store
can enforce it atomically in its own engine without a second copy of the
decision: memory compares in Python (:meth:`OffsetCommit.decide`), SQLite turns
it into the ``WHERE`` of one ``UPDATE``, Redis hands the pairs to a Lua
compare-and-set that only compares fields. When the engine refuses, the store
reads the record the engine saw and :meth:`OffsetCommit.refusal` names the
error, so every backend raises the same exception with the same message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tusd_py.core import errors
from tusd_py.core.models import UploadInfo


@dataclass(frozen=True)
class OffsetCommit:
    """One requested compare-and-set of an upload's offset (a pure value).

    Construction applies rule 1 (raises ``ValueError``); :meth:`refusal` and
    :meth:`decide` apply rules 2 and 3 to a stored record.
    """

    expected: int
    new: int
    updated_at: float
    expires_at: float | None

    def __post_init__(self) -> None:
        if self.new < self.expected:
            raise ValueError(f"an offset never moves backwards (expected {self.expected}, new {self.new})")

    @property
    def requires(self) -> Mapping[str, Any]:
        """Record fields and the values they must hold for the commit to apply."""
        return {"offset": self.expected}

    @property
    def changes(self) -> Mapping[str, Any]:
        """The fields an accepted commit writes."""
        return {"offset": self.new, "updated_at": self.updated_at, "expires_at": self.expires_at}

    def refusal(self, stored: UploadInfo | None) -> errors.TusError | None:
        """The error refusing this commit against ``stored``, or None if it applies."""
        if stored is None:
            return errors.UploadNotFound()
        if any(getattr(stored, field) != value for field, value in self.requires.items()):
            return errors.OffsetMismatch(f"offset is {stored.offset}, expected {self.expected}")
        return None

    def refused(self, stored: UploadInfo | None) -> errors.TusError:
        """The error for a commit a store's engine refused, given the record
        it saw (or read right after): :meth:`refusal`, or a mismatch when the
        record was changed back by another writer in between."""
        refused = self.refusal(stored)
        if refused is not None:
            return refused
        return errors.OffsetMismatch(f"offset changed concurrently, expected {self.expected}")

    def decide(self, stored: UploadInfo | None) -> UploadInfo:
        """The record after this commit; raises :meth:`refusal`'s error instead."""
        refused = self.refusal(stored)
        if refused is not None:
            raise refused
        assert stored is not None  # refusal() returns UploadNotFound for None
        return stored.replace(**self.changes)
