"""Pure multipart arithmetic: part sizes, plans, splitter, copy ranges, scan."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.parts import MAX_PART_SIZE, MIB, PartPlan, copy_ranges, optimal_part_size, scan, split
from tusd_py.core.models import PartRecord


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (None, 8 * MIB),
        (0, 8 * MIB),
        (100 * MIB, 8 * MIB),
        (8 * MIB * 10_000, 8 * MIB),
        (8 * MIB * 10_000 + 1, 9 * MIB),
        (1 << 40, 105 * MIB),
    ],
)
def test_optimal_part_size(length: int | None, expected: int) -> None:
    assert optimal_part_size(length, 8 * MIB, 5 * MIB, 10_000) == expected


def test_part_size_respects_minimum_and_provider_limits() -> None:
    assert optimal_part_size(10, 1 * MIB, 5 * MIB, 10_000) == 5 * MIB
    assert optimal_part_size(10 * (1 << 30), 8 * MIB, 5 * MIB, 1000) == 11 * MIB
    assert optimal_part_size(MAX_PART_SIZE * 1000, 8 * MIB, 5 * MIB, 1000) == MAX_PART_SIZE
    with pytest.raises(ValueError):
        optimal_part_size(MAX_PART_SIZE * 1000 + 1, 8 * MIB, 5 * MIB, 1000)


@given(st.integers(min_value=0, max_value=5 << 40))
def test_known_length_always_fits_max_parts(length: int) -> None:
    size = optimal_part_size(length, 8 * MIB, 5 * MIB, 10_000)
    assert 5 * MIB <= size <= MAX_PART_SIZE
    assert -(-length // size) <= 10_000


def test_growing_plan_for_deferred_lengths() -> None:
    plan = PartPlan.for_length(None, 8 * MIB, 5 * MIB, 10_000)
    assert plan.grow_every == 1000
    assert plan.part_size(1) == plan.part_size(1000) == 8 * MIB
    assert plan.part_size(1001) == 16 * MIB
    assert plan.part_start(1001) == 1000 * 8 * MIB
    assert plan.capacity > 5 << 40  # a deferred upload can reach S3's 5 TiB object limit
    small = PartPlan.for_length(None, 8 * MIB, 5 * MIB, 1000)
    assert small.capacity > 500 << 30


@given(st.integers(min_value=0, max_value=(1 << 42)), st.sampled_from([0, 3, 1000]))
def test_locate_inverts_part_start(offset: int, grow_every: int) -> None:
    plan = PartPlan(size=5 * MIB, max_parts=10_000, grow_every=grow_every)
    if offset >= plan.capacity:
        with pytest.raises(ValueError):
            plan.locate(offset)
        return
    number, inside = plan.locate(offset)
    assert plan.part_start(number) + inside == offset
    assert 0 <= inside < plan.part_size(number)


def test_plan_round_trips_through_storage_meta() -> None:
    plan = PartPlan(size=6 * MIB, max_parts=1000, grow_every=100)
    assert PartPlan.from_meta(plan.to_meta()) == plan


@given(st.integers(min_value=0, max_value=40 * MIB), st.integers(min_value=0, max_value=12 * MIB))
def test_split_cuts_writes_along_part_boundaries(offset: int, length: int) -> None:
    plan = PartPlan(size=5 * MIB)
    pieces = list(split(plan, offset, length))
    assert sum(p.length for p in pieces) == length
    position = offset
    for piece in pieces:
        assert plan.part_start(piece.number) + piece.part_offset == position
        assert piece.part_offset + piece.length <= plan.part_size(piece.number)
        assert piece.fills_part == (piece.part_offset + piece.length == plan.part_size(piece.number))
        position += piece.length


def test_copy_ranges() -> None:
    assert copy_ranges(0, 4 * MIB, 5 * MIB) == []
    assert copy_ranges(3, 5 * MIB + 3, 5 * MIB) == [(3, 5 * MIB + 3)]
    ranges = copy_ranges(0, 11 * MIB, 5 * MIB, maximum=5 * MIB)
    assert ranges[0][0] == 0 and ranges[-1][1] == 11 * MIB
    assert all(5 * MIB >= b - a >= 3 * MIB for a, b in ranges)
    assert all(ranges[i][1] == ranges[i + 1][0] for i in range(len(ranges) - 1))


def test_scan_counts_recorded_parts_then_spool_files() -> None:
    plan = PartPlan(size=5 * MIB)
    recorded = {1: PartRecord(1, "e1", 5 * MIB), 3: PartRecord(3, "e3", 5 * MIB)}
    held = scan(plan, recorded, {2: 5 * MIB, 3: 5 * MIB, 4: 2 * MIB, 6: MIB})
    assert held.offset == 17 * MIB
    assert held.sealed == [2]
    assert held.tail == (4, 2 * MIB)
    assert held.stale == [3, 6]
    assert scan(plan, {}, {2: MIB}).offset == 0
