"""Redis :class:`Locker`: one writer per upload across every instance.

* A lock is the key ``P lock:<id>`` holding its owner token
  ``<random> <boot-id> <mark>``, taken with ``SET NX PX <ttl>``. While
  held, a heartbeat renews the TTL every ``ttl / 3`` (compare-and-``PEXPIRE``
  in Lua), so a crashed or frozen holder's lock expires ``ttl`` seconds
  after its last renewal.
* Release is compare-and-delete in Lua (a lock that expired and was taken by
  someone else is never deleted) and publishes ``free <id>`` so waiters on any
  instance retry at once instead of at their next poll.
* A request that finds the lock taken publishes ``release <id> <token>`` on
  the channel ``P lock-events``. Every instance listens; the one holding that
  token calls its holder's ``on_release_requested`` (once): the PATCH handler
  closes its connection, saves what it has and releases. Requests are
  repeated every ``ask_interval`` while the same token holds the lock, so a
  message lost while the subscriber reconnects only delays the hand-over.
* A holder that is surely gone is not waited for: a dead process on this
  host (see :mod:`tusd_py.locking.liveness`), or a token of this process
  that none of its locks holds or is taking (``issued``: e.g. left by a
  release Redis did not answer). Its lock is taken over at once
  (compare-and-set in Lua), by ``acquire`` and ``try_acquire`` alike, so a
  crashed instance's locks never block its restart's reconciliation nor the
  next PATCH. A holder on another host frees its lock ``ttl`` after its
  last renewal.
* If the heartbeat cannot renew the lock (Redis unreachable) until shortly
  before it would expire, or finds it taken over, the holder is asked to stop
  as well: it may no longer write once another instance could own the lock.

Redis failures while acquiring raise :class:`errors.StateStoreError` (503);
``release`` never raises (an unreleased lock expires after its TTL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from pathlib import Path

import redis.asyncio as aioredis

from tusd_py.core import errors
from tusd_py.locking.liveness import ProcessMark
from tusd_py.locking.waiters import FreeWaiters, ReleaseCallback
from tusd_py.state.redis_errors import REDIS_FAILURES, map_redis_errors, text

log = logging.getLogger("tusd_py.app")

#: KEYS: lock. ARGV: token, ttl ms. Returns 1 when taken, else the holder's token (or nil).
_TAKE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return redis.call('GET', KEYS[1])
"""

#: KEYS: lock. ARGV: token, ttl ms. Returns 1 if still ours (and renewed), else 0.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

#: KEYS: lock. ARGV: dead holder's token, new token, ttl ms. Returns 1 if taken over.
_STEAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""

#: KEYS: lock. ARGV: token, channel, message. Returns 1 if it was ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0
"""


class RedisLock:
    """A lock on one upload id, shared by every instance using the same Redis."""

    def __init__(self, locker: RedisLocker, upload_id: str) -> None:
        self._locker = locker
        self.upload_id = upload_id
        self.key = locker.lock_key(upload_id)
        self.token: str | None = None
        #: Release requests reach the holder's callback through this (once per hold).
        self.release_requests = ReleaseCallback(upload_id)
        self._backend_failing = False
        self._heartbeat: asyncio.Task[None] | None = None
        #: Loop time before which the lock is surely ours (renewals move it on).
        self.valid_until = 0.0

    def backend_failing(self) -> bool:
        return self._backend_failing

    def still_held(self) -> bool:
        """Held, and the lease cannot have expired yet (with a safety margin)."""
        if self.token is None:
            return False
        return asyncio.get_running_loop().time() < self.valid_until - self._locker.ttl / 10

    async def acquire(self, timeout: float, on_release_requested: Callable[[], None]) -> None:
        if self.token is not None:
            raise RuntimeError(f"lock on {self.upload_id} is already held")
        locker = self._locker
        await locker.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        token = locker.new_token()
        wake = locker.waiters.add(self.upload_id)
        locker.issued.add(token)
        try:
            asked: str | None = None
            asked_at = 0.0
            delay = locker.poll_min
            for _ in range(10_000_000):  # bounded by the deadline below
                wake.clear()
                sent_at = loop.time()  # the TTL runs from no earlier than this
                with map_redis_errors("lock"):
                    reply = await locker.take(self.key, token)
                holder = text(reply) if reply is not None and reply != 1 else None
                if reply == 1 or holder == token:  # ours (a retried SET sees its own effect)
                    break
                if holder is not None and await self._take_over(holder, token):
                    break
                now = loop.time()
                if holder is not None and (holder != asked or now - asked_at >= locker.ask_interval):
                    await locker.ask_release(self.upload_id, holder)
                    asked, asked_at = holder, now
                remaining = deadline - now
                if remaining <= 0:
                    raise errors.LockTimeout(retry_after=min(timeout, 5.0) or 1.0)
                if holder is None:
                    continue  # freed between SET and GET: try again at once
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), min(remaining, delay))
                delay = min(delay * 2, locker.poll_max)
        except BaseException:
            locker.issued.discard(token)  # a SET that ran after all is nobody's: taken over
            raise
        finally:
            locker.waiters.remove(self.upload_id, wake)
        self._hold(token, on_release_requested, sent_at)

    async def try_acquire(self, on_release_requested: Callable[[], None]) -> bool:
        if self.token is not None:
            raise RuntimeError(f"lock on {self.upload_id} is already held")
        locker = self._locker
        await locker.start()
        token = locker.new_token()
        started = asyncio.get_running_loop().time()
        locker.issued.add(token)
        taken = False
        try:
            with map_redis_errors("lock"):
                reply = await locker.take(self.key, token)
            holder = text(reply) if reply is not None and reply != 1 else None
            taken = (
                reply == 1 or holder == token or (holder is not None and await self._take_over(holder, token))
            )
        finally:
            if not taken:
                locker.issued.discard(token)
        if taken:
            self._hold(token, on_release_requested, started)
        return taken

    async def _take_over(self, holder: str, token: str) -> bool:
        """Take the lock from ``holder`` if its process is surely dead; True if taken."""
        locker = self._locker
        if not locker.holder_dead(holder):
            return False
        with map_redis_errors("lock"):
            taken = await locker.steal(self.key, holder, token)
        if taken:
            log.warning(
                "lock on %s was held by a process that is gone (%s); taken over",
                self.upload_id,
                holder.partition(" ")[2],
                extra={"upload_id": self.upload_id},
            )
        return taken

    def _hold(self, token: str, on_release_requested: Callable[[], None], taken_at: float) -> None:
        self.token = token
        self.release_requests.arm(on_release_requested)
        self._backend_failing = False
        self._locker.holders[self.upload_id] = self
        self.valid_until = taken_at + self._locker.ttl
        self._heartbeat = asyncio.ensure_future(self._renew_loop(token))

    async def _renew_loop(self, token: str) -> None:
        """Renew the TTL; ask the holder to stop once the lock may be lost."""
        locker = self._locker
        loop = asyncio.get_running_loop()
        interval = locker.ttl / 3
        margin = locker.ttl / 4
        wait = interval
        while self.token == token:
            await asyncio.sleep(max(0.0, min(wait, self.valid_until - margin - loop.time())))
            if self.token != token:
                return
            started = loop.time()
            try:
                # Bounded so that a hanging Redis is noticed before the TTL runs out.
                answer_by = max(0.05, self.valid_until - margin / 2 - started)
                renewed = await asyncio.wait_for(locker.renew(self.key, token), answer_by)
            except REDIS_FAILURES as exc:
                if loop.time() >= self.valid_until - margin:
                    log.warning(
                        "lock on %s may expire (Redis unreachable: %s); stopping its writer",
                        self.upload_id,
                        exc,
                        extra={"upload_id": self.upload_id},
                    )
                    self._backend_failing = True
                    self.release_requests.request()
                    return
                wait = min(interval, locker.poll_max)
                continue
            if not renewed:
                log.warning(
                    "lock on %s was lost (expired and taken over); stopping its writer",
                    self.upload_id,
                    extra={"upload_id": self.upload_id},
                )
                self.release_requests.request()
                return
            self.valid_until = started + locker.ttl
            locker.mark.touch()
            wait = interval

    async def release(self) -> None:
        token, self.token = self.token, None
        if token is None:
            return
        self.release_requests.disarm()
        locker = self._locker
        if locker.holders.get(self.upload_id) is self:
            del locker.holders[self.upload_id]
        heartbeat, self._heartbeat = self._heartbeat, None
        if heartbeat is not None:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await heartbeat
        try:
            await locker.drop(self.key, token, self.upload_id)
        except REDIS_FAILURES as exc:
            log.warning(
                "could not release the lock on %s (%s); it expires after %.1fs",
                self.upload_id,
                exc,
                locker.ttl,
                extra={"upload_id": self.upload_id},
            )
        finally:
            locker.issued.discard(token)
            locker.waiters.notify(self.upload_id)  # waiters in this process retry now


class RedisLocker:
    """Locks on one Redis; one instance per server process.

    ``ttl`` is the lock lifetime without heartbeat; waiters poll between
    ``poll_min`` and ``poll_max`` seconds (woken early by ``free`` messages)
    and repeat release requests every ``ask_interval`` seconds.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str = "tusd-py:",
        *,
        ttl: float = 10.0,
        poll_min: float = 0.02,
        poll_max: float = 0.5,
        ask_interval: float = 1.0,
        mark_dir: Path | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self._redis = redis
        self._prefix = prefix
        self.channel = f"{prefix}lock-events"
        self.ttl = ttl
        self._ttl_ms = max(1, int(ttl * 1000))
        self.poll_min = poll_min
        self.poll_max = poll_max
        self.ask_interval = ask_interval
        #: Locks held in this process, by upload id.
        self.holders: dict[str, RedisLock] = {}
        #: Tokens of this process that may be in Redis: those of locks held or
        #: being acquired (a SET whose answer is still on its way is not in
        #: ``holders`` yet), until released. Another token with this
        #: process's mark is nobody's.
        self.issued: set[str] = set()
        self.waiters = FreeWaiters()
        self._take = redis.register_script(_TAKE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._steal = redis.register_script(_STEAL)
        #: This process's liveness mark (opened by :meth:`start`; none without ``mark_dir``).
        self.mark = ProcessMark(mark_dir, sweep_age=max(3600.0, 10 * ttl))
        self._listener: asyncio.Task[None] | None = None
        self._subscribed: asyncio.Event | None = None
        self._closed = False

    def lock_key(self, upload_id: str) -> str:
        return f"{self._prefix}lock:{upload_id}"

    def new_lock(self, upload_id: str) -> RedisLock:
        return RedisLock(self, upload_id)

    def new_token(self) -> str:
        """A fresh lock value: random, then this process's mark (if any)."""
        holder = self.mark.holder
        return f"{secrets.token_hex(16)} {holder}" if holder else secrets.token_hex(16)

    def holder_dead(self, token: str) -> bool:
        """True only if the lock value ``token`` names a holder surely gone: a
        dead process on this host, or this process when none of its locks
        holds or is taking ``token`` (e.g. a release Redis did not answer)."""
        _random, _, holder = token.partition(" ")
        if not holder:
            return False
        if holder == self.mark.holder:
            return token not in self.issued
        return self.mark.is_dead(holder)

    # --- Redis calls (callers map errors) ---------------------------------------

    async def take(self, key: str, token: str) -> object:
        """1 if ``key`` was free and is now ours, else the holder's token (or None)."""
        reply = await self._take(keys=[key], args=[token, self._ttl_ms])
        if reply == 1:
            self.mark.touch()
        return reply

    async def steal(self, key: str, holder: str, token: str) -> bool:
        """Replace ``holder``'s value by ``token`` (compare-and-set); True if done."""
        taken = int(await self._steal(keys=[key], args=[holder, token, self._ttl_ms])) == 1
        if taken:
            self.mark.touch()
        return taken

    async def renew(self, key: str, token: str) -> bool:
        return int(await self._renew(keys=[key], args=[token, self._ttl_ms])) == 1

    async def drop(self, key: str, token: str, upload_id: str) -> None:
        await self._release(keys=[key], args=[token, self.channel, f"free {upload_id}"])

    # --- release requests and wake-ups ----------------------------------------------

    async def ask_release(self, upload_id: str, token: str) -> None:
        """Ask whoever holds ``upload_id`` with ``token`` to release it."""
        local = self.holders.get(upload_id)
        if local is not None and local.token == token:
            local.release_requests.request()
            return
        with map_redis_errors("lock release request"):
            await self._redis.publish(self.channel, f"release {upload_id} {token}")

    def _dispatch(self, data: object) -> None:
        """Handle ``release <id> <token>`` and ``free <id>`` messages."""
        parts = (text(data) or "").split(" ", 2) if isinstance(data, (bytes, str)) else []
        if len(parts) == 3 and parts[0] == "release":
            holder = self.holders.get(parts[1])
            if holder is not None and holder.token == parts[2]:
                holder.release_requests.request()
        elif len(parts) == 2 and parts[0] == "free":
            self.waiters.notify(parts[1])

    # --- subscription -----------------------------------------------------------------

    async def start(self, wait: float = 1.0) -> None:
        """Start listening for lock events. The first call waits up to ``wait``
        seconds for the subscription, so the first holder does not miss a
        release request (requests are repeated anyway, so later calls, e.g.
        during a Redis outage, do not wait)."""
        if self._closed:
            raise errors.StateStoreError("the locker is closed")
        self.mark.open()
        if self._listener is None:
            subscribed = self._subscribed = asyncio.Event()
            self._listener = asyncio.ensure_future(self._listen(subscribed))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(subscribed.wait(), wait)

    async def _listen(self, subscribed: asyncio.Event) -> None:
        """Receive lock events; resubscribe with backoff after Redis failures."""
        backoff = 0.05
        failures = 0
        while not self._closed:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                subscribed.set()
                if failures:
                    log.info("lock events resubscribed after %d failures", failures)
                backoff, failures = 0.05, 0
                while not self._closed:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._dispatch(message.get("data"))
            except REDIS_FAILURES as exc:
                subscribed.clear()
                if failures == 0:
                    log.warning("lock events subscription lost: %s; retrying", exc)
                failures += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def close(self) -> None:
        """Release locks still held (after a drain there should be none) and
        stop listening; idempotent."""
        self._closed = True
        for lock in list(self.holders.values()):
            await lock.release()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener
        self.mark.close()
