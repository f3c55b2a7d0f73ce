"""``ThrottleGuard``: the :class:`tusd_py.throttle.base.Guard` that enforces SPEC §5.

Limits (``[throttle]``; 0 = unlimited; ``admin`` principals are exempt from
all of them except the server-wide cap):

* every request: ``ip_requests_per_minute`` per client IP;
* upload creations additionally: ``ip_creations_per_minute`` per client IP
  (raised to the caller's tier rate when that is higher) and the tier's
  ``creations_per_minute`` per user;
* partial uploads (``Upload-Concat: partial``) are pieces of the one upload
  their final upload creates, so they do not count as creations (``tusd-py
  upload --parallel N`` or tus-js-client ``parallelUploads`` then cost one
  creation per file, not N + 1). They count against windows of their own,
  :data:`PARTIALS_PER_CREATION` times the creation limits, and like every
  upload their bodies take stream slots (tier ``concurrency``) and their
  lengths are checked against the tier's ``max_size``;
* request bodies: the tier's ``concurrency`` per user (leases shared through
  the lease store, refreshed by one heartbeat task per process, lapsing
  ``lease_ttl`` seconds after a crash), and ``[server] max_streams`` per
  process (503, protects this instance).

Rate limits answer 429 with ``Retry-After`` and ``RateLimit-Limit`` /
``-Remaining`` / ``-Reset`` of the tightest limit; those headers are also
added to successful responses. Every message names the limit that was hit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections.abc import Callable, Mapping

from tusd_py.auth.tiers import tier_of, tier_table
from tusd_py.core import errors
from tusd_py.core.config import Config
from tusd_py.core.models import Principal
from tusd_py.throttle.base import RequestKind, StreamSlot
from tusd_py.throttle.counters import WindowCounters, WindowHit
from tusd_py.throttle.leases import LeaseStore

log = logging.getLogger("tusd_py.app")

#: Retry-After (seconds) for a full stream limit: a slot frees when any upload ends.
STREAM_RETRY_AFTER = 5.0
#: Partial uploads allowed per creation allowed (the client's largest ``--parallel``).
PARTIALS_PER_CREATION = 64


class _LeaseSlot:
    """A held stream slot; ``release`` is idempotent."""

    def __init__(self, guard: ThrottleGuard, user: str, lease: str | None) -> None:
        self._guard = guard
        self._user = user
        self._lease = lease
        self._released = False

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        await self._guard._release(self._user, self._lease)


class ThrottleGuard:
    """See the module docstring. ``clock`` returns seconds (Unix time in production)."""

    def __init__(
        self,
        config: Config,
        counters: WindowCounters,
        leases: LeaseStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = config.throttle
        self.tiers = tier_table(config)
        self.max_streams = config.server.max_streams
        self.lease_ttl = config.throttle.lease_ttl
        self.counters = counters
        self.leases = leases
        self.clock = clock
        #: Request bodies streaming through this process now.
        self.streams = 0
        self._held: dict[str, str] = {}
        self._heartbeat: asyncio.Task[None] | None = None

    # --- request rates ---------------------------------------------------------

    async def check(
        self, kind: RequestKind, principal: Principal | None, client_ip: str
    ) -> Mapping[str, str]:
        if principal is not None and principal.is_admin:
            return {}
        s = self.settings
        planned: list[tuple[str, str, str, int]] = []
        if s.ip_requests_per_minute:
            planned.append(
                (
                    f"{s.ip_requests_per_minute} requests per minute per IP address",
                    "ip-requests",
                    client_ip,
                    s.ip_requests_per_minute,
                )
            )
        if kind != "request":
            planned.extend(self._creation_limits(kind, principal, client_ip))
        if not planned:
            return {}
        hits = await asyncio.gather(
            *(self.counters.hit(name, scope, ident, limit) for name, scope, ident, limit in planned)
        )
        return self._verdict(hits)

    def _creation_limits(
        self, kind: RequestKind, principal: Principal | None, client_ip: str
    ) -> list[tuple[str, str, str, int]]:
        """``(name, scope, ident, limit)`` of the creation windows of ``kind``
        (``create`` or ``partial``: see the module docstring)."""
        s = self.settings
        factor, what, suffix = (
            (1, "upload creations", "creations")
            if kind == "create"
            else (PARTIALS_PER_CREATION, "partial upload creations", "partials")
        )
        tier_rate = tier_of(self.tiers, principal).creations_per_minute if principal else 0
        planned = []
        if s.ip_creations_per_minute:
            ip_limit = max(s.ip_creations_per_minute, tier_rate) * factor
            planned.append(
                (f"{ip_limit} {what} per minute per IP address", f"ip-{suffix}", client_ip, ip_limit)
            )
        if principal is not None and tier_rate:
            user_limit = tier_rate * factor
            planned.append(
                (
                    f"{user_limit} {what} per minute per user of tier {principal.tier}",
                    f"user-{suffix}",
                    principal.user,
                    user_limit,
                )
            )
        return planned

    def _verdict(self, hits: list[WindowHit]) -> dict[str, str]:
        """RateLimit headers of the tightest limit; raises 429 if any is exceeded."""
        now = self.clock()
        exceeded = [h for h in hits if h.exceeded]
        binding = (
            max(exceeded, key=lambda h: h.reset_at)
            if exceeded
            else min(hits, key=lambda h: (h.remaining, h.reset_at))
        )
        reset = max(1, math.ceil(binding.reset_at - now))
        headers = {
            "RateLimit-Limit": str(binding.limit),
            "RateLimit-Remaining": str(binding.remaining),
            "RateLimit-Reset": str(reset),
        }
        if exceeded:
            raise errors.RateLimited(
                f"rate limit reached: at most {binding.name}; retry in {reset} s",
                retry_after=reset,
                headers=headers,
            )
        return headers

    # --- stream slots ------------------------------------------------------------

    async def open_stream(self, principal: Principal, client_ip: str) -> StreamSlot:
        if self.max_streams and self.streams >= self.max_streams:
            raise errors.ServerBusy(
                f"server limit reached: at most {self.max_streams} uploads stream at once "
                "on this server; retry shortly",
                retry_after=STREAM_RETRY_AFTER,
            )
        self.streams += 1
        try:
            lease = await self._take_lease(principal)
        except BaseException:
            self.streams -= 1
            raise
        return _LeaseSlot(self, principal.user, lease)

    async def _take_lease(self, principal: Principal) -> str | None:
        tier = tier_of(self.tiers, principal)
        if principal.is_admin or not tier.concurrency:
            return None
        lease = secrets.token_hex(8)
        taken = await self.leases.acquire(
            principal.user, lease, tier.concurrency, self.clock(), self.lease_ttl
        )
        if not taken:
            raise errors.ConcurrencyLimited(
                f"concurrency limit reached: tier {tier.name} allows {tier.concurrency} uploads "
                "in progress at once per user; retry when one of them ends",
                retry_after=STREAM_RETRY_AFTER,
            )
        self._held[lease] = principal.user
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._beat())
        return lease

    async def _release(self, user: str, lease: str | None) -> None:
        self.streams = max(0, self.streams - 1)
        if lease is None:
            return
        self._held.pop(lease, None)
        try:
            await self.leases.release(user, lease)
        except errors.TusError as exc:
            log.warning("could not release a stream lease of %s (it lapses by itself): %s", user, exc.message)

    async def _beat(self) -> None:
        """Refresh every lease this process holds, every third of the TTL."""
        interval = self.lease_ttl / 3
        while self._held:
            await asyncio.sleep(interval)
            held = [(user, lease) for lease, user in self._held.items()]
            if not held:
                break
            try:
                await self.leases.refresh(held, self.clock(), self.lease_ttl)
            except errors.TusError as exc:
                log.warning("could not refresh %d stream leases: %s", len(held), exc.message)

    async def close(self) -> None:
        """Stop the heartbeat and give back leases still held (best effort)."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        for lease, user in list(self._held.items()):
            await self._release(user, lease)
        await self.counters.close()
