"""Pure multipart arithmetic: part sizes, part boundaries, the splitter, and
:func:`scan` (the bytes that recorded parts and spool files hold).

S3 rules encoded here: every part but the last is at least ``min_part_size``
(5 MiB on AWS), no part is larger than :data:`MAX_PART_SIZE` (5 GiB), and an
object has at most ``max_parts`` parts (10,000 on AWS, 1,000 on some
providers).

A :class:`PartPlan` maps upload offsets to part numbers deterministically, so
the part a byte belongs to never depends on how the client cut its PATCHes.
Known lengths get equal parts (:func:`optimal_part_size`); deferred lengths get
a growing plan (the size doubles every ``max_parts // 10`` parts), which keeps
small uploads on small parts yet reaches terabytes within ``max_parts``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from tusd_py.core.models import PartRecord

MIB = 1 << 20
#: Largest part (and largest UploadPartCopy range) S3 accepts.
MAX_PART_SIZE = 5 << 30
#: Growing plans double their part size this many times at most.
GROWTH_TIERS = 10


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def optimal_part_size(length: int | None, preferred: int, minimum: int, max_parts: int) -> int:
    """The part size for an object of ``length`` bytes (None = unknown).

    ``preferred`` raised to ``minimum``, then grown (in whole MiB) so that
    ``length`` fits in ``max_parts`` parts. Raises ``ValueError`` when even
    :data:`MAX_PART_SIZE` parts cannot hold ``length``.
    """
    if minimum < 1 or max_parts < 1:
        raise ValueError("minimum and max_parts must be positive")
    size = max(preferred, minimum)
    if length is not None and length > size * max_parts:
        size = _round_up(-(-length // max_parts), MIB)
    if size > MAX_PART_SIZE:
        if length is not None and length <= MAX_PART_SIZE * max_parts:
            return MAX_PART_SIZE
        raise ValueError(f"{length} bytes do not fit in {max_parts} parts of at most 5 GiB")
    return size


@dataclass(frozen=True, slots=True)
class PartPlan:
    """Where each part of an upload starts and how long it is.

    ``grow_every == 0``: every part is ``size`` bytes (the last may be shorter).
    Otherwise parts ``1..grow_every`` are ``size`` bytes, the next
    ``grow_every`` are twice that, and so on (capped at :data:`MAX_PART_SIZE`).
    Part numbers start at 1.
    """

    size: int
    max_parts: int = 10_000
    grow_every: int = 0

    @classmethod
    def for_length(cls, length: int | None, preferred: int, minimum: int, max_parts: int) -> PartPlan:
        """Equal parts for a known length, a growing plan for a deferred one."""
        size = optimal_part_size(length, preferred, minimum, max_parts)
        if length is not None:
            return cls(size=size, max_parts=max_parts)
        return cls(size=size, max_parts=max_parts, grow_every=max(1, max_parts // GROWTH_TIERS))

    def _tier(self, number: int) -> int:
        return (number - 1) // self.grow_every if self.grow_every else 0

    def part_size(self, number: int) -> int:
        """The full size of part ``number``."""
        if number < 1:
            raise ValueError("part numbers start at 1")
        return min(self.size << self._tier(number), MAX_PART_SIZE)

    def part_start(self, number: int) -> int:
        """The upload offset where part ``number`` begins."""
        if number < 1:
            raise ValueError("part numbers start at 1")
        if not self.grow_every:
            return (number - 1) * self.size
        start = 0
        tier = self._tier(number)
        for t in range(tier):
            start += self.grow_every * min(self.size << t, MAX_PART_SIZE)
        return start + (number - 1 - tier * self.grow_every) * self.part_size(number)

    @property
    def capacity(self) -> int:
        """The most bytes this plan can hold in ``max_parts`` parts."""
        return self.part_start(self.max_parts) + self.part_size(self.max_parts)

    def locate(self, offset: int) -> tuple[int, int]:
        """``(part number, offset inside that part)`` of upload byte ``offset``.

        Raises ``ValueError`` past :attr:`capacity`.
        """
        if offset < 0:
            raise ValueError("offsets are non-negative")
        if offset >= self.capacity:
            raise ValueError(f"offset {offset} is beyond the {self.max_parts}-part capacity of the plan")
        if not self.grow_every:
            return offset // self.size + 1, offset % self.size
        number = 1
        start = 0
        while True:
            tier_bytes = self.grow_every * self.part_size(number)
            if offset < start + tier_bytes:
                size = self.part_size(number)
                index = (offset - start) // size
                return number + index, offset - start - index * size
            start += tier_bytes
            number += self.grow_every

    def to_meta(self) -> dict[str, str]:
        """The plan as ``storage_meta`` entries."""
        return {
            "part_size": str(self.size),
            "max_parts": str(self.max_parts),
            "grow_every": str(self.grow_every),
        }

    @classmethod
    def from_meta(cls, meta: Mapping[str, str]) -> PartPlan:
        """Inverse of :meth:`to_meta`; raises ``KeyError``/``ValueError`` if absent or bad."""
        return cls(
            size=int(meta["part_size"]),
            max_parts=int(meta["max_parts"]),
            grow_every=int(meta.get("grow_every", "0")),
        )


@dataclass(frozen=True, slots=True)
class Piece:
    """A slice of a write that falls inside one part."""

    number: int
    #: Offset inside the part where the slice starts.
    part_offset: int
    #: Offset inside the written buffer where the slice starts.
    buffer_offset: int
    length: int
    #: True if the slice ends exactly at the end of its part.
    fills_part: bool


def split(plan: PartPlan, offset: int, length: int) -> Iterator[Piece]:
    """Cut a write of ``length`` bytes at upload ``offset`` along part boundaries."""
    done = 0
    while done < length:
        number, inside = plan.locate(offset + done)
        room = plan.part_size(number) - inside
        take = min(room, length - done)
        yield Piece(number, inside, done, take, take == room)
        done += take


def copy_ranges(start: int, end: int, minimum: int, maximum: int = MAX_PART_SIZE) -> list[tuple[int, int]]:
    """Split ``[start, end)`` into ranges each ``minimum..maximum`` bytes long.

    Used for UploadPartCopy, where every copied part but the object's last
    must respect the minimum. Returns ``[]`` when the span is shorter than
    ``minimum`` (the caller streams such bytes instead).
    """
    total = end - start
    if total < minimum or total <= 0:
        return []
    count = -(-total // maximum)
    base, extra = divmod(total, count)
    ranges = []
    position = start
    for i in range(count):
        size = base + (1 if i < extra else 0)
        ranges.append((position, position + size))
        position += size
    return ranges


@dataclass(frozen=True, slots=True)
class Scan:
    """What an upload holds, from recorded parts and spool files."""

    offset: int
    #: Full spool parts not yet recorded (upload pending).
    sealed: list[int] = field(default_factory=list)
    #: ``(number, size)`` of the unfinished last spool part, if any.
    tail: tuple[int, int] | None = None
    #: Spool files that are stale (already recorded, or beyond a gap).
    stale: list[int] = field(default_factory=list)


def scan(plan: PartPlan, recorded: Mapping[int, PartRecord], files: Mapping[int, int]) -> Scan:
    """The contiguous bytes held: recorded parts, then spool files, from part 1.

    A recorded part wins over a spool file of the same number; the first
    short part ends the upload's held bytes; files after a gap are stale.
    """
    offset = 0
    sealed: list[int] = []
    tail: tuple[int, int] | None = None
    number = 1
    while True:
        full = plan.part_size(number)
        if number in recorded:
            size = recorded[number].size
        elif number in files and files[number] > 0:
            size = files[number]
            if size >= full:
                size = full
                sealed.append(number)
            else:
                tail = (number, size)
        else:
            break
        offset += size
        number += 1
        if size < full:
            break
    kept = set(sealed) | ({tail[0]} if tail else set())
    stale = sorted(n for n in files if n not in kept)
    return Scan(offset, sealed, tail, stale)
