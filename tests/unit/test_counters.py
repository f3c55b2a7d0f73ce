"""In-process window counters: counting and forgetting old windows."""

from __future__ import annotations

import pytest

from tests.fakes import FakeClock
from tusd_py.throttle.counters import InProcessCounters, WindowCounters


@pytest.mark.gen_test
async def test_counts_per_window_and_forgets_old_windows() -> None:
    store = InProcessCounters()
    clock = FakeClock(120.0)
    counters = WindowCounters(store, clock=clock)
    for expected in (1, 2, 3):
        hit = await counters.hit("n", "s", "a", 2)
        assert (hit.count, hit.exceeded, hit.remaining, hit.reset_at) == (
            expected,
            expected > 2,
            max(0, 2 - expected),
            180.0,
        )
    assert (await counters.hit("n", "s", "b", 2)).count == 1
    for minute in range(1, 100):
        clock.now = 120.0 + 60 * minute
        assert (await counters.hit("n", "s", "a", 2)).count == 1
    assert len(store._windows) <= 2
