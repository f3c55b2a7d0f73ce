"""A bounded LRU of verified bearer tokens: raw token → principal, until ``exp``.

Verifying a JWT (base64 and JSON decoding, key preparation, the HMAC or
signature check, the claim checks) is the largest piece of a HEAD's own
work on the server; a client sends the same token with every request of an
upload. :class:`VerifiedTokens` remembers the outcome of a *successful*
verification, keyed by the exact raw token string, for as long as that
verification stays true:

* **until ``exp`` (+ the configured leeway)** — the instant the verifier
  would start refusing the token as expired. Every other check of the
  verification is a property of the token's bytes and the server's fixed
  config (signature, algorithm, ``aud``/``iss``, ``sub``, tier) or became
  true once and stays true as time advances (``nbf``/``iat`` not in the
  future), so a hit gives exactly the answer a fresh verification would.
* **Revocation is not a feature** of tusd-py (a token is valid until it
  expires; SPEC: bearer JWTs, no revocation list), so caching until ``exp``
  never accepts a token the server would refuse. Should revocation ever be
  added, this cache must consult it or be dropped.
* **Only successes are cached.** A token that fails any check raises before
  :meth:`VerifiedTokens.put` is reached and is verified afresh (and refused
  again) on every request: a bad token can neither enter nor evict entries
  via a success path, and no error message is ever replayed from a cache.
* **Bounded**: at most ``max_entries`` tokens of at most
  :data:`MAX_CACHED_TOKEN` characters; the least recently used one is
  dropped first. Entries past their expiry are dropped when looked up.

Memory: one entry is the token string and a
:class:`~tusd_py.core.models.Principal` (frozen; its claims are shared and
must be treated as read-only, which ``Mapping`` already says).

Thread safety: lookups and inserts take a lock (uncontended on the event
loop thread; correct if called from elsewhere).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from tusd_py.core.models import Principal

#: Tokens remembered per process (hard-coded).
TOKEN_CACHE_SIZE = 4096
#: Longer tokens are verified every time, never remembered: with the entry
#: bound this caps the cache near 4096 x (4 KiB + its claims) ~ 40 MiB in the
#: worst case; typical tokens are 200 bytes to 2 KiB (~1–10 MiB).
MAX_CACHED_TOKEN = 4096


class VerifiedTokens:
    """Raw token → (principal, valid until), LRU-bounded (see module doc)."""

    def __init__(self, max_entries: int = TOKEN_CACHE_SIZE, clock: Callable[[], float] = time.time) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> Principal | None:
        """The principal of a still-valid cached ``token``, else None (a miss)."""
        with self._lock:
            entry = self._entries.get(token)
            if entry is None:
                return None
            principal, valid_until = entry
            if self._clock() >= valid_until:
                del self._entries[token]
                return None
            self._entries.move_to_end(token)
            return principal

    def put(self, token: str, principal: Principal, valid_until: float) -> None:
        """Remember a token that was just verified, until ``valid_until``
        (epoch seconds: its ``exp`` plus the verifier's leeway)."""
        if len(token) > MAX_CACHED_TOKEN or self._clock() >= valid_until:
            return
        with self._lock:
            self._entries[token] = (principal, valid_until)
            self._entries.move_to_end(token)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
