"""The truncation ring: the partition's last ``ring_size`` stamped records, and every
question asked of them.

For each record read the ring keeps its offset, stream, sequence and record timestamp, in
read order, so offsets only grow along it. It answers: where a stream's newest record is
and its timestamp (a stream does not keep it, for memory: see ``docs/benchmarks.md``),
the timestamp R8 compares a new record 0 with, which records a truncation removed and
how to rewind past them (R13), where a re-read log first differs from what was read
(R13), the newest record read before an offset (a probe), and the ring as packed bytes
for a snapshot.

The columns are public lists written by index ``n & mask`` on the tracker's hot path
(:meth:`PartitionTracker.observe`), where a method call per record would cost more than
the rest of the record; everything else goes through the methods here.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable
from typing import Any

from gapwatch.core.stream import Stream
from gapwatch.core.wire import Stamp


class Ring:
    """Preallocated parallel columns of the last ``size`` records read (``size`` a power
    of two). ``n`` counts ring writes (a truncation rewinds it, moving the rewound count
    to ``records_base``); entries ``start()..n-1`` are valid; ``records_base + n`` is the
    number of records read."""

    __slots__ = ("floor", "mask", "n", "offsets", "records_base", "seqs", "streams", "ts")

    def __init__(self, size: int) -> None:
        self.mask = size - 1
        self.n = 0
        self.records_base = 0
        # Entries below ``floor`` were overwritten by a rewind and are invalid.
        self.floor = 0
        # Lists, not array.array: a list store is a pointer write, while an array store
        # converts the int (measured: 0.25 us more per record for four columns). The price
        # is that the ring keeps its ints alive (see docs/tracker.md for the bytes).
        self.offsets: list[int] = [0] * size
        self.seqs: list[int] = [0] * size
        self.ts: list[int] = [0] * size
        # The stream each record was attributed to; None for a record of no stream (a
        # zombie epoch), which a truncation or divergence check must not name.
        self.streams: list[Stream | None] = [None] * size

    # --- positions -------------------------------------------------------------------

    def start(self) -> int:
        """Index of the oldest valid entry (entries ``start()..n-1`` are valid)."""
        return max(self.floor, self.n - self.mask - 1)

    def records(self) -> int:
        """How many stamped records were read (a rewind does not take any back)."""
        return self.n + self.records_base

    def attribute(self, index: int, stream: Stream | None) -> None:
        """Name the stream of the entry at ring index ``index`` (its rule decided it)."""
        self.streams[index] = stream

    # --- a stream's newest record ----------------------------------------------------

    def index_of(self, st: Stream) -> int:
        """Ring index (``start()..n-1``) of ``st``'s high record, or -1 if it left."""
        offsets, mask, n = self.offsets, self.mask, self.n
        lo, hi = self.start(), n
        target = st.high_offset
        while lo < hi:  # binary search: offsets only grow along the ring
            mid = (lo + hi) // 2
            if offsets[mid & mask] < target:
                lo = mid + 1
            else:
                hi = mid
        while lo < n and offsets[lo & mask] == target:
            if self.streams[lo & mask] is st and self.seqs[lo & mask] == st.high:
                return lo
            lo += 1
        return -1

    def high_record_ts(self, st: Stream) -> int | None:
        """Timestamp of ``st``'s high record while the ring still holds it, else None."""
        k = self.index_of(st)
        return None if k < 0 else self.ts[k & self.mask]

    def reset_reference_ts(self, st: Stream) -> int:
        """The timestamp R8 compares a new record 0 against (see the tracker's rules)."""
        ts = self.high_record_ts(st)
        if ts is None:
            start = self.start()
            # st's newest record left the ring, so the ring's oldest record was read after
            # it and is at least as new (up to clock skew between producers).
            ts = self.ts[start & self.mask] if start < self.n else -1
        return ts

    # --- R13: truncation -------------------------------------------------------------

    def first_at_or_above(self, new_end: int) -> int:
        """The index of the oldest of the newest entries whose offsets are all at or above
        ``new_end`` (``n`` when the newest entry is below it: nothing to truncate)."""
        offsets, mask = self.offsets, self.mask
        oldest = self.start()
        j = self.n
        while j > oldest and offsets[(j - 1) & mask] >= new_end:
            j -= 1
        return j

    def end_offset(self) -> int:
        """One past the newest entry's offset (the ring must not be empty)."""
        return self.offsets[(self.n - 1) & self.mask] + 1

    def unaccounted_below(self, j: int, new_end: int) -> int:
        """Truncated offsets older than the ring, when a truncation reaches entry ``j``."""
        oldest = self.start()
        first = self.offsets[oldest & self.mask]
        if j == oldest and first > new_end and oldest > 0:
            return first - new_end
        return 0

    def gone_sequences(self, j: int) -> dict[Stream, set[int]]:
        """Per stream, the sequences of entries ``j..n-1`` that no older entry repeats
        (a record read again before the cut is still in the log)."""
        seqs, streams, mask = self.seqs, self.streams, self.mask
        gone: dict[Stream, set[int]] = {}
        for k in range(j, self.n):
            st = streams[k & mask]
            if st is not None:
                gone.setdefault(st, set()).add(seqs[k & mask])
        for k in range(self.start(), j):
            st = streams[k & mask]
            if st is not None and st in gone:
                gone[st].discard(seqs[k & mask])
        return gone

    def rewind(self, j: int) -> None:
        """Forget entries ``j..n-1``; the slots they shared with older entries are no
        longer valid either."""
        n, mask = self.n, self.mask
        for k in range(j, n):
            self.streams[k & mask] = None
        self.floor = max(self.floor, n - (mask + 1), 0)
        self.records_base += n - j
        self.n = j

    # --- R13: divergence -------------------------------------------------------------

    def verify_from(self) -> int | None:
        """The oldest offset the ring can verify, or ``None`` if it holds nothing."""
        start = self.start()
        if start >= self.n:
            return None
        return self.offsets[start & self.mask]

    def newest_read(self, before: int | None = None) -> tuple[int, Stamp] | None:
        """The newest (offset, stamp) the ring holds below ``before``, or ``None``.

        A probe: if the log still holds exactly this record, it holds everything before
        it too (replicas agree on a prefix), so only records after it need comparing. The
        caller picks ``before`` so that the probe was read from the previous leader
        (records read after a leader change may come from the new one and prove nothing).
        """
        offsets, streams, mask = self.offsets, self.streams, self.mask
        for k in range(self.n - 1, self.start() - 1, -1):
            st = streams[k & mask]
            if st is not None and (before is None or offsets[k & mask] < before):
                return offsets[k & mask], Stamp(st.producer, st.epoch, self.seqs[k & mask])
        return None

    def find_divergence(
        self, log: Iterable[tuple[int, Stamp | None]], *, log_start: int, log_end: int
    ) -> tuple[int, bool] | None:
        """The first ring offset the log no longer holds as read, and whether it is the
        ring's oldest verifiable entry (``beyond_ring``); ``None`` if the log agrees.

        After a leader change the new leader's log may differ from what was read, even
        when its end is above the read position; replicas agree on a prefix and differ
        after it. ``log`` is every record from ``log_start`` (at or below the ring's
        oldest offset, or the new log start if retention removed more) up to ``log_end``
        (the new log end), in offset order, with its stamp (``None``: unstamped). An
        entry whose offset holds a different stamp, an unstamped record, nothing, or lies
        at or above ``log_end``, is the divergence point. Entries of no stream (zombie
        epochs) are skipped: only the sequence is known, so they prove nothing. Entries
        below ``log_start`` are not compared (retention, not divergence). If even the
        oldest entry differs, the divergence may be older than the ring can tell.
        """
        offsets, seqs, streams, mask = self.offsets, self.seqs, self.streams, self.mask
        records = iter(log)
        current: tuple[int, Stamp | None] | None = next(records, None)
        first_compared = True
        for k in range(self.start(), self.n):
            offset, st = offsets[k & mask], streams[k & mask]
            if offset < log_start or st is None:
                continue
            if offset >= log_end:
                return offset, first_compared and self._is_wrapped()
            while current is not None and current[0] < offset:
                current = next(records, None)
            stamp = None if current is None or current[0] != offset else current[1]
            if (
                stamp is None
                or stamp.seq != seqs[k & mask]
                or stamp.producer != st.producer
                or stamp.epoch != st.epoch
            ):
                return offset, first_compared and self._is_wrapped()
            first_compared = False
        return None

    def _is_wrapped(self) -> bool:
        # Records were read before the ring's oldest entry: a divergence there may be deeper.
        return self.start() + self.records_base > 0

    # --- snapshots -------------------------------------------------------------------

    def valid_streams(self) -> list[Stream | None]:
        """The stream column of the valid entries, oldest first."""
        return self._window(self.streams)

    def pack(self, owners: list[int]) -> bytes:
        """The valid entries as four byte-shuffled little-endian arrays: offsets,
        sequences, timestamps, and ``owners`` (a stream index per entry, -1 for none)."""
        return (
            shuffle_bytes(pack_column("q", self._window(self.offsets)), 8)
            + shuffle_bytes(pack_column("Q", self._window(self.seqs)), 8)
            + shuffle_bytes(pack_column("q", self._window(self.ts)), 8)
            + shuffle_bytes(pack_column("i", owners), 4)
        )

    def load(self, entries: list[tuple[int, Stream | None, int, int]], records: int) -> None:
        """Fill an empty ring with (offset, stream, seq, timestamp) entries, oldest first
        (only the newest ``size`` are kept); ``records`` were read in all."""
        entries = entries[-(self.mask + 1) :]
        for k, (offset, owner, seq, ts) in enumerate(entries):
            self.offsets[k] = offset
            self.streams[k] = owner
            self.seqs[k] = seq
            self.ts[k] = ts
        self.n = len(entries)
        self.records_base = records - self.n

    def _window(self, column: list[Any]) -> list[Any]:
        # The valid entries in read order: one slice, or two when the ring has wrapped.
        start, n, size = self.start(), self.n, self.mask + 1
        lo, hi = start % size, n % size
        if n - start == size:
            return column[lo:] + column[:lo]
        return column[lo:hi] if lo <= hi else column[lo:] + column[:hi]


# --- packing columns (all in C: a full ring costs milliseconds, not a loop per entry) ---


def shuffle_bytes(data: bytes, width: int) -> bytes:
    """``data`` (values of ``width`` bytes each) regrouped by byte position: byte 0 of
    every value, then byte 1 of every value, and so on. Steadily climbing offsets and
    timestamps then turn into long runs that deflate well."""
    return b"".join(data[i::width] for i in range(width))


def unshuffle_bytes(data: bytes, width: int) -> bytes:
    """The inverse of :func:`shuffle_bytes`; ``len(data)`` must be a multiple of ``width``."""
    count = len(data) // width
    out = bytearray(len(data))
    for i in range(width):
        out[i::width] = data[i * count : (i + 1) * count]
    return bytes(out)


def pack_column(code: str, values: list[Any]) -> bytes:
    """``values`` as an ``array`` of type ``code``, little-endian whatever the host."""
    packed = array(code, values)
    if sys.byteorder != "little":
        packed.byteswap()
    return packed.tobytes()


def unpack_column(code: str, data: bytes) -> list[Any]:
    """The inverse of :func:`pack_column`."""
    values = array(code)
    values.frombytes(data)
    if sys.byteorder != "little":
        values.byteswap()
    return values.tolist()
