"""The compact per-stream state of the tracker and its sorted runs of missing sequences.

A stream is one (producer, epoch) on one partition. Its hot fields live in a ``__slots__``
object so the in-order path is a few attribute stores; everything only a stream with
trouble needs (missing ranges, reset generation, pending producer reports) lives in a
lazily created :class:`StreamAux`, so a healthy stream costs under 300 bytes (see
``docs/benchmarks.md``).
"""

from __future__ import annotations

from bisect import bisect_right


class Range:
    """Missing sequences ``first..last`` (inclusive) owned by the gap ``gap_id``."""

    __slots__ = ("first", "gap_id", "last")

    def __init__(self, first: int, last: int, gap_id: str) -> None:
        self.first = first
        self.last = last
        self.gap_id = gap_id

    def __repr__(self) -> str:
        return f"Range({self.first}, {self.last}, {self.gap_id!r})"


class PendingReport:
    """A producer's claim waiting for the confirmation rule: acked up to ``acked``."""

    __slots__ = ("acked", "assigned", "final", "reported_at")

    def __init__(self, reported_at: float, acked: int, assigned: int, *, final: bool) -> None:
        self.reported_at = reported_at
        self.acked = acked
        self.assigned = assigned
        self.final = final


class StreamAux:
    """State only streams with gaps, resets or producer reports need."""

    __slots__ = ("generation", "ranges", "reports", "told")

    def __init__(self, generation: int = 0) -> None:
        self.generation = generation
        self.ranges: list[Range] = []
        self.reports: list[PendingReport] = []
        # Inclusive ranges the producer reported as failed, not yet seen as a gap.
        self.told: list[tuple[int, int]] = []

    def is_empty(self) -> bool:
        """Whether dropping this object would lose nothing."""
        return not (self.generation or self.ranges or self.reports or self.told)


class Stream:
    """Everything the tracker knows of one stream, so forgetting it forgets all of it.

    ``high`` is the highest sequence seen and ``high_offset`` the offset of that record
    (the record just before any gap that opens next; its timestamp is looked up in the
    ring while the record is still there); ``last_seen`` is the caller's ``now`` at the
    last record that advanced the stream. ``baseline`` is ``(seq, first seen at)`` for a
    stream first seen mid-way, kept only while rule R9 needs it; ``skip_mark`` is the
    last offset of a skip the stream has not resolved yet (R16). Missing ranges, the reset
    generation, pending producer reports and reported failed ranges live in ``aux``.
    """

    __slots__ = (
        "aux",
        "baseline",
        "epoch",
        "high",
        "high_offset",
        "last_seen",
        "producer",
        "skip_mark",
    )

    def __init__(
        self,
        producer: str,
        epoch: int,
        seq: int,
        offset: int,
        now: float,
        aux: StreamAux | None = None,
    ) -> None:
        self.producer = producer
        self.epoch = epoch
        self.high = seq
        self.high_offset = offset
        self.last_seen = now
        self.aux = aux
        self.baseline: tuple[int, float] | None = None
        self.skip_mark: int | None = None

    def is_unresolved(self) -> bool:
        """Whether nothing of this stream was read since a skip (its next record is
        unknown, R16)."""
        mark = self.skip_mark
        return mark is not None and self.high_offset <= mark

    @property
    def generation(self) -> int:
        """How many sequence resets this stream has been through."""
        return 0 if self.aux is None else self.aux.generation

    @property
    def ranges(self) -> list[Range]:
        """The stream's missing ranges, sorted (empty list if none; do not mutate)."""
        return _NO_RANGES if self.aux is None else self.aux.ranges

    def ensure_aux(self) -> StreamAux:
        """The aux object, created on first need."""
        aux = self.aux
        if aux is None:
            aux = self.aux = StreamAux()
        return aux

    def drop_aux_if_empty(self) -> None:
        """Give the aux's memory back once nothing is left in it."""
        if self.aux is not None and self.aux.is_empty():
            self.aux = None


_NO_RANGES: list[Range] = []


def _first(r: Range) -> int:
    return r.first


def find_range(ranges: list[Range], seq: int) -> int:
    """Index of the range containing ``seq``, or -1."""
    i = bisect_right(ranges, seq, key=_first) - 1
    if i >= 0 and ranges[i].last >= seq:
        return i
    return -1


def insert_range(ranges: list[Range], new: Range) -> None:
    """Insert ``new`` keeping ``ranges`` sorted; the caller guarantees no overlap."""
    ranges.insert(bisect_right(ranges, new.first, key=_first), new)


def take_seq(ranges: list[Range], index: int, seq: int) -> Range | None:
    """Remove ``seq`` from ``ranges[index]``; return the new right piece of a split."""
    r = ranges[index]
    if r.first == r.last:
        del ranges[index]
        return None
    if seq == r.first:
        r.first = seq + 1
        return None
    if seq == r.last:
        r.last = seq - 1
        return None
    right = Range(seq + 1, r.last, r.gap_id)
    r.last = seq - 1
    ranges.insert(index + 1, right)
    return right


def remove_gap_ranges(ranges: list[Range], gap_id: str) -> None:
    """Forget every range of ``gap_id``."""
    ranges[:] = [r for r in ranges if r.gap_id != gap_id]
