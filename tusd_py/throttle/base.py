"""The ``Guard`` seam: rate limits, per-user stream leases, server-wide caps.

Handlers call :meth:`Guard.check` in ``prepare`` (before any body byte is
read) and hold a :class:`StreamSlot` while a request body streams. The
:class:`NullGuard` allows everything; :mod:`tusd_py.throttle` provides the
guard :func:`tusd_py.throttle.build_guard` returns (in-process, or on Redis).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal, Protocol, runtime_checkable

from tusd_py.auth.tiers import tier_of, tier_table
from tusd_py.core.config import Config
from tusd_py.core.models import Principal

#: ``create``: a request that creates an upload; ``partial``: one that creates a
#: partial upload (``Upload-Concat: partial``); ``request``: any other.
RequestKind = Literal["create", "partial", "request"]


@runtime_checkable
class StreamSlot(Protocol):
    async def release(self) -> None:
        """Give the slot back; idempotent."""


@runtime_checkable
class Guard(Protocol):
    async def check(
        self, kind: RequestKind, principal: Principal | None, client_ip: str
    ) -> Mapping[str, str]:
        """Count one request; raise ``RateLimited`` (429) when over a limit.

        Returns headers to add to the response (``RateLimit-*``)."""

    async def open_stream(self, principal: Principal, client_ip: str) -> StreamSlot:
        """Take a body-stream slot; raise ``RateLimited`` (429, per user) or
        ``ServerBusy`` (503, server-wide)."""

    async def close(self) -> None:
        """Release resources; idempotent."""


class _NullSlot:
    async def release(self) -> None:
        return None


class NullGuard:
    """Allows every request."""

    async def check(
        self, kind: RequestKind, principal: Principal | None, client_ip: str
    ) -> Mapping[str, str]:
        return {}

    async def open_stream(self, principal: Principal, client_ip: str) -> StreamSlot:
        return _NullSlot()

    async def close(self) -> None:
        return None


def tier_size_limit(config: Config) -> Callable[[Principal], int] | None:
    """Per-principal maximum upload size from the tier table (0 = unlimited)."""
    table = tier_table(config)
    return lambda principal: tier_of(table, principal).max_size
