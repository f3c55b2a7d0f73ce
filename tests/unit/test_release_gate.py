"""``ReleaseGate``: a release request cuts only an idle holder (issue 14.3)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tusd_py.core.release import ReleaseGate

IDLE = 0.05


class FakeLock:
    """The two health questions the gate asks of a lock."""

    def __init__(self, *, failing: bool = False, held: bool = True) -> None:
        self.failing = failing
        self.held = held

    async def acquire(self, timeout: float, on_release_requested: Callable[[], None]) -> None: ...

    async def try_acquire(self, on_release_requested: Callable[[], None]) -> bool:
        return True

    def still_held(self) -> bool:
        return self.held

    def backend_failing(self) -> bool:
        return self.failing

    async def release(self) -> None: ...


def gate_with_event(idle: float = IDLE, lock: FakeLock | None = None) -> tuple[ReleaseGate, asyncio.Event]:
    cut = asyncio.Event()
    gate = ReleaseGate(cut.set, idle)
    gate.held_by(lock or FakeLock())
    return gate, cut


@pytest.mark.gen_test
async def test_idle_holder_is_cut_once_idle_long_enough() -> None:
    gate, cut = gate_with_event()
    gate.requested()
    assert not cut.is_set()  # just admitted: live
    await asyncio.wait_for(cut.wait(), 5)


@pytest.mark.gen_test
async def test_a_live_writer_is_not_cut_until_it_stalls() -> None:
    gate, cut = gate_with_event()
    gate.requested()
    for _ in range(20):  # 4 x IDLE of steady writing
        gate.begin_write()
        await asyncio.sleep(IDLE / 5)
        gate.end_write()
        assert not cut.is_set()
    await asyncio.wait_for(cut.wait(), 5)  # stalled: cut


@pytest.mark.gen_test
async def test_a_slow_store_of_one_chunk_is_not_idleness() -> None:
    gate, cut = gate_with_event()
    gate.begin_write()
    gate.requested()
    await asyncio.sleep(3 * IDLE)
    assert not cut.is_set()
    gate.end_write()
    await asyncio.wait_for(cut.wait(), 5)


@pytest.mark.gen_test
@pytest.mark.parametrize("lock", [FakeLock(failing=True), FakeLock(held=False)], ids=["failing", "lost"])
async def test_a_lock_that_may_be_lost_is_given_up_at_once(lock: FakeLock) -> None:
    gate, cut = gate_with_event(idle=60.0, lock=lock)
    gate.begin_write()
    gate.requested()
    assert cut.is_set()


@pytest.mark.gen_test
async def test_no_cut_after_the_hold_ended_and_zero_idle_cuts_at_once() -> None:
    gate, cut = gate_with_event()
    gate.requested()
    gate.close()
    await asyncio.sleep(3 * IDLE)
    assert not cut.is_set()
    eager, eager_cut = gate_with_event(idle=0.0)
    eager.begin_write()
    eager.requested()
    assert eager_cut.is_set()


@pytest.mark.gen_test
async def test_a_lock_failing_while_watched_is_given_up() -> None:
    """Lockers ask once per hold: a backend failure after a peer's request
    (which found the writer live) still stops the writer."""
    lock = FakeLock()
    gate, cut = gate_with_event(idle=0.2, lock=lock)
    gate.begin_write()
    gate.requested()
    gate.requested()  # a repeated ask changes nothing
    assert not cut.is_set()
    lock.failing = True
    await asyncio.wait_for(cut.wait(), 5)
