"""Small test doubles shared by several suites."""

from __future__ import annotations

import time


class FakeClock:
    """A settable clock (seconds); starts at the real time so tokens and expiries look sane."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
