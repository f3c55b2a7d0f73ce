"""When and how long the client waits before retrying: a pure policy.

``BackoffPolicy.delay(attempt)`` is exponential with "equal jitter": attempt
``n`` (1-based, consecutive failures without progress) waits between half and
all of ``min(cap, initial * factor**(n-1))``. A server's ``Retry-After`` is a
floor: the wait is never shorter than what the server asked for (up to
``max_retry_after``). The random source is injected so tests are exact.

:func:`classify` sorts HTTP statuses into what the uploader does with them:

============  ===========================================================
``RESYNC``    409: the offset moved; HEAD again, then continue (no delay
              the first time)
``RETRY``     408, 423, 429, 460, every 5xx: wait, HEAD, continue
``PERMANENT`` everything else that is an error (400, 401, 403, 404, 405,
              410, 412, 413, 415, ...): stop with a message
============  ===========================================================
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime


class Disposition(enum.Enum):
    RETRY = "retry"
    RESYNC = "resync"
    PERMANENT = "permanent"


#: Statuses worth retrying besides every 5xx.
RETRYABLE_STATUSES = frozenset({408, 423, 429, 460})


def classify(status: int) -> Disposition:
    """What to do about an error ``status`` (see the module table)."""
    if status == 409:
        return Disposition.RESYNC
    if status in RETRYABLE_STATUSES or 500 <= status <= 599:
        return Disposition.RETRY
    return Disposition.PERMANENT


def parse_retry_after(value: str | None, now: Callable[[], float] | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent/invalid."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    current = now() if now is not None else time.time()
    return max(0.0, when.timestamp() - current)


@dataclass(frozen=True)
class BackoffPolicy:
    """Exponential backoff with jitter; ``max_attempts`` consecutive failures end the retries."""

    initial: float = 0.25
    factor: float = 2.0
    cap: float = 30.0
    max_attempts: int = 10
    #: Longest Retry-After honoured (a larger one is clamped to this).
    max_retry_after: float = 600.0
    rng: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial < 0 or self.cap < 0 or self.factor < 1 or self.max_attempts < 0:
            raise ValueError("backoff: initial/cap must be >= 0, factor >= 1, max_attempts >= 0")

    def should_retry(self, attempt: int) -> bool:
        """True while ``attempt`` (1-based count of consecutive failures) is within the budget."""
        return attempt <= self.max_attempts

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (>= 1)."""
        if attempt < 1:
            raise ValueError("attempt counts from 1")
        ceiling = min(self.cap, self.initial * self.factor ** (attempt - 1))
        wait = ceiling / 2 + self.rng() * ceiling / 2
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


class RetryBudget:
    """Counts consecutive failures without progress.

    ``failed()`` returns the attempt number of the failure just seen;
    ``progressed()`` (the server's offset moved forward) starts counting
    again. So a link that drops every few MiB never exhausts the budget, while
    one that moves nothing gives up after ``policy.max_attempts`` retries.
    """

    def __init__(self, policy: BackoffPolicy) -> None:
        self.policy = policy
        self.attempt = 0

    def failed(self) -> int:
        self.attempt += 1
        return self.attempt

    def progressed(self) -> None:
        self.attempt = 0

    @property
    def exhausted(self) -> bool:
        return not self.policy.should_retry(self.attempt)
