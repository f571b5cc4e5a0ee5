"""The truncation ring: the partition's last ``ring_size`` stamped records, and every
question asked of them.

For each record read the ring keeps its offset, stream, sequence and record timestamp, in
read order, so offsets only grow along it. It answers: where a stream's newest record is
and its timestamp (a stream does not keep it, for memory: see ``docs/benchmarks.md``),
the timestamp R8 compares a new record 0 with, which records a truncation removed and
how to rewind past them (R13), where a re-read log first differs from what was read
(R13), the newest record read before an offset (a probe), and the ring as packed bytes
for a snapshot.

Two tiers, so that a full ring costs about 100-140 KiB, not megabytes. The newest block
of records lives in public lists written by index ``n & mask`` on the tracker's hot path
(:meth:`PartitionTracker.observe`), where a method call per record would cost more than
the rest of the record. When that block is full, the next write seals it (:meth:`seal`):
its four columns become compact byte planes (see :class:`SealedBlock`), with the block's
streams as a small table, so the Python ints of the block are freed. Sealing is a few
C-level passes over the block, ~0.1-0.15 us per record amortised (``docs/benchmarks.md``).
Older blocks are read back only for the rare questions (a gap opening whose previous
record is no longer in the newest block, truncation, divergence); a snapshot writes them
as they are and a restore takes them back without unpacking (:meth:`sealed_view`,
:meth:`load_sealed`). Everything else goes through the methods here.

Offsets and timestamps are int64 and sequences uint64, as Kafka and the stamp have them.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections import deque
from collections.abc import Iterable
from typing import Any

from gapwatch.core.stream import Stream
from gapwatch.core.wire import Stamp

BLOCK_SIZE = 256
"""Records per sealed block (at most the ring size): the newest block's lists and ints
take ~33 KB; a sealed block ~1-1.5 KB. Sealing costs a fixed step per block plus a few
C-level passes per record, so larger blocks save little time and keep more ints."""


# The columns of a sealed block: (struct code, bytes per value), in stored order:
# offsets, sequences, timestamps, and an index into the block's stream table.
_BLOCK_COLUMNS = (("q", 8), ("Q", 8), ("q", 8), ("H", 2))
_HEAD_SIZE = sum(width for _, width in _BLOCK_COLUMNS)
# ``widths[0]`` of a block whose offsets climb by one from its first (the usual case: a
# partition without transactions or compaction): no offset bytes are stored at all.
CONSECUTIVE = -1


class SealedBlock:
    """A sealed block of records ``base..base+count-1``.

    Each column (offsets int64, sequences uint64, timestamps int64, a uint16 index into
    ``streams`` per record) is kept as little-endian byte planes (byte 0 of every value,
    then byte 1, ...), and only the low planes that differ between the values: the planes
    above them equal the first value's bytes, kept in ``head``. Offsets, sequences and
    timestamps of 256 records rarely differ above their two low bytes, and consecutive
    offsets take no bytes at all, so a block takes ~1-1.3 KB instead of 6.6 KB. Every
    step is a C-level pass over the block (packing, slicing, counting bytes): sealing
    runs inside ``observe()``.
    """

    __slots__ = ("base", "count", "data", "head", "streams", "widths")

    def __init__(
        self,
        base: int,
        count: int,
        head: bytes,
        widths: tuple[int, ...],
        data: bytes,
        streams: tuple[Stream | None, ...],
    ) -> None:
        self.base = base
        self.count = count
        self.head = head
        self.widths = widths
        self.data = data
        self.streams = streams

    @classmethod
    def seal(
        cls,
        base: int,
        offsets: list[int],
        seqs: list[int],
        ts: list[int],
        owners: list[Stream | None],
    ) -> SealedBlock:
        """A block of the given columns (all of the same length, at least one value)."""
        count = len(offsets)
        streams: tuple[Stream | None, ...]
        if owners.count(owners[0]) == count:
            # One stream (an identity test per record): every index is 0, no lookups.
            streams, codes = (owners[0],), [0]
        else:
            # The block's streams in first-seen order; dict.fromkeys and map run in C.
            index: dict[Stream | None, int] = dict.fromkeys(owners, 0)
            streams = tuple(index)
            for k, st in enumerate(streams):
                index[st] = k
            codes = list(map(index.__getitem__, owners))
        head: list[bytes] = []
        widths: list[int] = []
        planes: list[bytes] = []
        first = offsets[0]
        columns: tuple[tuple[list[int], int], ...] = ((seqs, 1), (ts, 2), (codes, 3))
        if offsets == list(range(first, first + count)):
            head.append(pack_column("q", [first]))
            widths.append(CONSECUTIVE)
        else:
            columns = ((offsets, 0), *columns)
        for values, c in columns:
            code, width = _BLOCK_COLUMNS[c]
            raw = pack_column(code, values)
            if len(values) != count:  # the single stream's index: no plane at all
                head.append(raw)
                widths.append(0)
                continue
            kept = width
            while kept:  # the highest plane that is not the same byte in every value
                plane = raw[kept - 1 :: width]
                if plane.count(plane[0]) != count:
                    break
                kept -= 1
            head.append(raw[:width])
            widths.append(kept)
            planes.extend(raw[k::width] for k in range(kept))
        return cls(base, count, b"".join(head), tuple(widths), b"".join(planes), streams)

    def columns(self) -> tuple[list[int], list[int], list[int], list[Stream | None]]:
        """The block's (offsets, seqs, timestamps, streams), oldest first."""
        offsets, seqs, ts, owners = self._unpack((0, 1, 2, 3))
        return offsets, seqs, ts, list(map(self.streams.__getitem__, owners))

    def offsets(self) -> list[int]:
        """The block's offsets alone (what a search compares)."""
        return self._unpack((0,))[0]

    def stream_indexes(self) -> list[int]:
        """Per record, its index into :attr:`streams`."""
        return self._unpack((3,))[0]

    def _unpack(self, wanted: tuple[int, ...]) -> list[list[int]]:
        # The columns numbered ``wanted`` (ascending) as lists of ints.
        count, data, head = self.count, self.data, self.head
        at = head_at = 0
        values: list[list[int]] = []
        for c, ((code, width), kept) in enumerate(zip(_BLOCK_COLUMNS, self.widths, strict=True)):
            first = head[head_at : head_at + width]
            head_at += width
            if c not in wanted:
                at += max(kept, 0) * count
                continue
            if kept == CONSECUTIVE:
                start = unpack_column(code, first)[0]
                values.append(list(range(start, start + count)))
                continue
            out = bytearray(first * count)
            for k in range(kept):
                out[k::width] = data[at : at + count]
                at += count
            values.append(unpack_column(code, bytes(out)))
        return values

    # --- snapshots -------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The block as a snapshot writes it: its widths (one signed byte per column),
        the head, and the kept planes (the snapshot compresses all blocks at once: one
        deflate call per block would cost more than the rest of the snapshot)."""
        return bytes(w & 0xFF for w in self.widths) + self.head + self.data

    @classmethod
    def from_bytes(
        cls, base: int, count: int, raw: bytes, streams: tuple[Stream | None, ...]
    ) -> SealedBlock:
        """The inverse of :meth:`to_bytes`; raises ``ValueError`` unless ``raw`` holds a
        block of ``count`` records whose stream indexes fall within ``streams``."""
        columns = len(_BLOCK_COLUMNS)
        widths = tuple(w - 256 if w > 127 else w for w in raw[:columns])
        if len(widths) != columns:
            raise ValueError("block widths")
        for c, (w, (_, width)) in enumerate(zip(widths, _BLOCK_COLUMNS, strict=True)):
            if not (0 <= w <= width or (w == CONSECUTIVE and c == 0)):
                raise ValueError("block widths")
        head_end = columns + _HEAD_SIZE
        data = raw[head_end:]
        if len(data) != count * sum(max(w, 0) for w in widths):
            raise ValueError("block size")
        block = cls(base, count, raw[columns:head_end], widths, data, streams)
        if count and max(block.stream_indexes()) >= len(streams):
            raise ValueError("block stream")
        return block


class Ring:
    """The last ``size`` records read (``size`` a power of two). ``n`` counts ring writes
    (a truncation rewinds it, moving the rewound count to ``records_base``); entries
    ``start()..n-1`` are valid; ``records_base + n`` is the number of records read.
    Entries ``hot_base..n-1`` are in the lists (slot ``k & mask``), older ones in sealed
    blocks."""

    __slots__ = (
        "blocks",
        "floor",
        "hot_base",
        "mask",
        "n",
        "offsets",
        "origin",
        "records_base",
        "seqs",
        "size",
        "streams",
        "ts",
    )

    def __init__(self, size: int) -> None:
        self.size = size
        block = min(size, BLOCK_SIZE)
        self.mask = block - 1
        self.n = 0
        self.records_base = 0
        # Entries below ``floor`` were invalidated by a rewind (see :meth:`rewind`).
        self.floor = 0
        # The first position entries were written at: 0, or after a restore that kept
        # the blocks as they were, the position of the oldest restored entry.
        self.origin = 0
        self.hot_base = 0
        self.blocks: deque[SealedBlock] = deque()
        # Lists, not array.array: a list store is a pointer write, while an array store
        # converts the int (measured: 0.25 us more per record for four columns). Only
        # the newest block is kept this way.
        self.offsets: list[int] = [0] * block
        self.seqs: list[int] = [0] * block
        self.ts: list[int] = [0] * block
        # The stream each record was attributed to; None for a record of no stream (a
        # zombie epoch), which a truncation or divergence check must not name.
        self.streams: list[Stream | None] = [None] * block

    # --- writing ---------------------------------------------------------------------

    def seal(self) -> None:
        """Seal the full hot block before its slots are written again. The hot path
        calls this when the slot it is about to write is slot 0; it does nothing unless
        the hot block is full (the first write, or after a rewind to a block's start)."""
        n, hot_base = self.n, self.hot_base
        if n == hot_base:
            return
        self.blocks.append(
            SealedBlock.seal(hot_base, self.offsets, self.seqs, self.ts, self.streams)
        )
        self.hot_base = n
        start, blocks = self.start(), self.blocks
        while blocks and blocks[0].base + blocks[0].count <= start:
            blocks.popleft()

    def write(self, offset: int, st: Stream | None, seq: int, ts: int) -> int:
        """Record one entry and return its slot: what the tracker's hot path does inline."""
        n = self.n
        i = n & self.mask
        if not i:
            self.seal()
        self.offsets[i] = offset
        self.streams[i] = st
        self.seqs[i] = seq
        self.ts[i] = ts
        self.n = n + 1
        return i

    # --- positions -------------------------------------------------------------------

    def start(self) -> int:
        """Index of the oldest valid entry (entries ``start()..n-1`` are valid)."""
        return max(self.floor, self.n - self.size)

    def records(self) -> int:
        """How many stamped records were read (a rewind does not take any back)."""
        return self.n + self.records_base

    def attribute(self, index: int, stream: Stream | None) -> None:
        """Name the stream of the newest entry, at slot ``index`` (its rule decided it)."""
        self.streams[index] = stream

    def _slice(
        self, lo: int, hi: int
    ) -> tuple[list[int], list[int], list[int], list[Stream | None]]:
        # The columns of entries lo..hi-1 (within start()..n-1), reading only the blocks
        # that hold some of them.
        parts: list[tuple[list[int], list[int], list[int], list[Stream | None]]] = []
        for block in self.blocks:
            base = block.base
            if base + block.count <= lo or base >= hi:
                continue
            a, z = max(lo - base, 0), min(hi, base + block.count) - base
            o, s, t, w = block.columns()
            parts.append((o[a:z], s[a:z], t[a:z], w[a:z]))
        hot_base = self.hot_base
        if hi > hot_base:
            a, z = max(lo - hot_base, 0), hi - hot_base
            parts.append((self.offsets[a:z], self.seqs[a:z], self.ts[a:z], self.streams[a:z]))
        if len(parts) == 1:
            return parts[0]
        offsets: list[int] = []
        seqs: list[int] = []
        ts: list[int] = []
        streams: list[Stream | None] = []
        for o, s, t, w in parts:
            offsets += o
            seqs += s
            ts += t
            streams += w
        return offsets, seqs, ts, streams

    def _window(self) -> tuple[list[int], list[int], list[int], list[Stream | None]]:
        # All valid entries, oldest first (index 0 is entry start()).
        return self._slice(self.start(), self.n)

    # --- a stream's newest record ----------------------------------------------------

    def index_of(self, st: Stream) -> int:
        """Index (``start()..n-1``) of ``st``'s high record, or -1 if it left the ring."""
        return self._locate(st)[0]

    def high_record_ts(self, st: Stream) -> int | None:
        """Timestamp of ``st``'s high record while the ring still holds it, else None."""
        k, ts = self._locate(st)
        return None if k < 0 else ts

    def _locate(self, st: Stream) -> tuple[int, int]:
        # (index, timestamp) of st's high record, or (-1, 0): a binary search over the
        # valid entries (offsets only grow along the ring), reading the offsets of the
        # few sealed blocks it probes.
        reader = _Reader(self)
        lo, hi = self.start(), self.n
        target = st.high_offset
        while lo < hi:
            mid = (lo + hi) // 2
            if reader.is_offset_below(mid, target):
                lo = mid + 1
            else:
                hi = mid
        while lo < self.n:
            offset, seq, ts, owner = reader.entry(lo)
            if offset != target:
                break
            if owner is st and seq == st.high:
                return lo, ts
            lo += 1
        return -1, 0

    def reset_reference_ts(self, st: Stream) -> int:
        """The timestamp R8 compares a new record 0 against (see the tracker's rules)."""
        ts = self.high_record_ts(st)
        if ts is None:
            start = self.start()
            # st's newest record left the ring, so the ring's oldest record was read after
            # it and is at least as new (up to clock skew between producers).
            ts = self._slice(start, start + 1)[2][0] if start < self.n else -1
        return ts

    # --- R13: truncation -------------------------------------------------------------

    def first_at_or_above(self, new_end: int) -> int:
        """The index of the oldest of the newest entries whose offsets are all at or above
        ``new_end`` (``n`` when the newest entry is below it: nothing to truncate)."""
        start = self.start()
        offsets = self._window()[0]
        j = len(offsets)
        while j > 0 and offsets[j - 1] >= new_end:
            j -= 1
        return start + j

    def end_offset(self) -> int:
        """One past the newest entry's offset (the ring must not be empty)."""
        return self._slice(self.n - 1, self.n)[0][0] + 1

    def unaccounted_below(self, j: int, new_end: int) -> int:
        """Truncated offsets older than the ring, when a truncation reaches entry ``j``."""
        oldest = self.start()
        first = self._slice(oldest, oldest + 1)[0][0]
        if j == oldest and first > new_end and oldest > self.origin:
            return first - new_end
        return 0

    def gone_sequences(self, j: int) -> dict[Stream, set[int]]:
        """Per stream, the sequences of entries ``j..n-1`` that no older entry repeats
        (a record read again before the cut is still in the log)."""
        start = self.start()
        _, seqs, _, streams = self._window()
        cut = j - start
        gone: dict[Stream, set[int]] = {}
        for k in range(cut, len(seqs)):
            st = streams[k]
            if st is not None:
                gone.setdefault(st, set()).add(seqs[k])
        for k in range(cut):
            st = streams[k]
            if st is not None and st in gone:
                gone[st].discard(seqs[k])
        return gone

    def rewind(self, j: int) -> None:
        """Forget entries ``j..n-1``. Entries older than ``n - size`` (before the
        rewind) count as overwritten by them, as in a ring of single slots, so they are
        no longer valid either."""
        n, mask = self.n, self.mask
        self.floor = max(self.floor, n - self.size, 0)
        self.records_base += n - j
        blocks = self.blocks
        if j < self.hot_base:
            # Bring the block holding entry j back into the lists; newer ones are gone.
            base = j - (j & mask)
            while blocks and blocks[-1].base > base:
                blocks.pop()
            if blocks and blocks[-1].base == base:
                o, s, t, w = blocks.pop().columns()
                self.offsets[: len(o)], self.seqs[: len(s)] = o, s
                self.ts[: len(t)], self.streams[: len(w)] = t, w
            self.hot_base = base
        for k in range(j, max(j, min(n, self.hot_base + mask + 1))):
            self.streams[k & mask] = None
        self.n = j

    # --- R13: divergence -------------------------------------------------------------

    def verify_from(self) -> int | None:
        """The oldest offset the ring can verify, or ``None`` if it holds nothing."""
        start = self.start()
        if start >= self.n:
            return None
        return self._slice(start, start + 1)[0][0]

    def newest_read(self, before: int | None = None) -> tuple[int, Stamp] | None:
        """The newest (offset, stamp) the ring holds below ``before``, or ``None``.

        A probe: if the log still holds exactly this record, it holds everything before
        it too (replicas agree on a prefix), so only records after it need comparing. The
        caller picks ``before`` so that the probe was read from the previous leader
        (records read after a leader change may come from the new one and prove nothing).
        """
        offsets, seqs, _, streams = self._window()
        for k in range(len(offsets) - 1, -1, -1):
            st = streams[k]
            if st is not None and (before is None or offsets[k] < before):
                return offsets[k], Stamp(st.producer, st.epoch, seqs[k])
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
        offsets, seqs, _, streams = self._window()
        records = iter(log)
        current: tuple[int, Stamp | None] | None = next(records, None)
        first_compared = True
        for k in range(len(offsets)):
            offset, st = offsets[k], streams[k]
            if offset < log_start or st is None:
                continue
            if offset >= log_end:
                return offset, first_compared and self._is_wrapped()
            while current is not None and current[0] < offset:
                current = next(records, None)
            stamp = None if current is None or current[0] != offset else current[1]
            if (
                stamp is None
                or stamp.seq != seqs[k]
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

    def window(self) -> tuple[list[int], list[int], list[int], list[Stream | None]]:
        """The valid entries' columns (offsets, seqs, timestamps, streams), oldest first."""
        return self._window()

    @staticmethod
    def pack(
        window: tuple[list[int], list[int], list[int], list[Stream | None]], owners: list[int]
    ) -> bytes:
        """The entries of ``window`` as four byte-shuffled little-endian arrays: offsets,
        sequences, timestamps, and ``owners`` (a stream index per entry, -1 for none)."""
        offsets, seqs, ts, _ = window
        return (
            shuffle_bytes(pack_column("q", offsets), 8)
            + shuffle_bytes(pack_column("Q", seqs), 8)
            + shuffle_bytes(pack_column("q", ts), 8)
            + shuffle_bytes(pack_column("i", owners), 4)
        )

    def load(
        self,
        offsets: list[int],
        owners: list[Stream | None],
        seqs: list[int],
        ts: list[int],
        records: int,
    ) -> None:
        """Fill an empty ring with entries given as columns, oldest first (only the
        newest ``size`` are kept); ``records`` were read in all."""
        keep = -self.size
        offsets, owners, seqs, ts = offsets[keep:], owners[keep:], seqs[keep:], ts[keep:]
        count = len(offsets)
        block = self.mask + 1
        # Every block but the newest is sealed at once; the newest goes to the lists.
        hot_base = (count - 1) // block * block if count else 0
        for base in range(0, hot_base, block):
            end = base + block
            self.blocks.append(
                SealedBlock.seal(
                    base, offsets[base:end], seqs[base:end], ts[base:end], owners[base:end]
                )
            )
        hot = count - hot_base
        self.offsets[:hot], self.seqs[:hot] = offsets[hot_base:], seqs[hot_base:]
        self.ts[:hot], self.streams[:hot] = ts[hot_base:], owners[hot_base:]
        self.hot_base = hot_base
        self.n = count
        self.records_base = records - count

    def sealed_view(
        self,
    ) -> tuple[int, list[SealedBlock], tuple[list[int], list[int], list[int], list[Stream | None]]]:
        """What a snapshot writes as it is: ``(phase, blocks, hot)``, the sealed blocks
        holding valid entries, the entries ``hot_base..n-1`` of the lists as columns,
        and how many entries of the first of them (block or lists) are not valid."""
        start, hot_base, n = self.start(), self.hot_base, self.n
        blocks = [b for b in self.blocks if b.base + b.count > start]
        first = blocks[0].base if blocks else hot_base
        hot = self._slice(hot_base, n) if n > hot_base else ([], [], [], [])
        return start - first, blocks, hot

    def block_size(self) -> int:
        """Records per sealed block of this ring (a snapshot's blocks fit another ring
        only if its block size and ring size are the same)."""
        return self.mask + 1

    def load_sealed(
        self,
        phase: int,
        blocks: list[SealedBlock],
        hot: tuple[list[int], list[int], list[int], list[Stream | None]],
        records: int,
    ) -> None:
        """Fill an empty ring with the blocks and lists of :meth:`sealed_view` of a ring
        of the same geometry (blocks built with bases ``0, block, 2 * block, ...``),
        without unpacking them; ``records`` were read in all."""
        self.blocks.extend(blocks)
        offsets, seqs, ts, owners = hot
        count = len(offsets)
        self.offsets[:count], self.seqs[:count] = offsets, seqs
        self.ts[:count], self.streams[:count] = ts, owners
        self.hot_base = len(blocks) * (self.mask + 1)
        self.n = self.hot_base + count
        # Positions keep the blocks' geometry: the entries before ``phase`` are stale.
        self.floor = self.origin = phase
        self.records_base = records - self.n


class _Reader:
    """Single entries of a ring for one search, each sealed block decoded once."""

    __slots__ = ("_columns", "_offsets", "_ring")

    def __init__(self, ring: Ring) -> None:
        self._ring = ring
        self._offsets: dict[int, list[int]] = {}
        self._columns: dict[int, tuple[list[int], list[int], list[int], list[Stream | None]]] = {}

    def _block(self, k: int) -> SealedBlock:
        blocks = self._ring.blocks
        return blocks[(k - blocks[0].base) // (self._ring.mask + 1)]

    def is_offset_below(self, k: int, target: int) -> bool:
        """Whether entry ``k``'s offset is below ``target``."""
        ring = self._ring
        if k >= ring.hot_base:
            return ring.offsets[k & ring.mask] < target
        block = self._block(k)
        offsets = self._offsets.get(block.base)
        if offsets is None:
            offsets = self._offsets[block.base] = block.offsets()
        return offsets[k - block.base] < target

    def entry(self, k: int) -> tuple[int, int, int, Stream | None]:
        """Entry ``k`` as (offset, seq, timestamp, stream)."""
        ring = self._ring
        if k >= ring.hot_base:
            i = k & ring.mask
            return ring.offsets[i], ring.seqs[i], ring.ts[i], ring.streams[i]
        block = self._block(k)
        columns = self._columns.get(block.base)
        if columns is None:
            columns = self._columns[block.base] = block.columns()
        i = k - block.base
        return columns[0][i], columns[1][i], columns[2][i], columns[3][i]


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
    """``values`` packed as ``struct`` type ``code``, little-endian whatever the host."""
    # struct, not array: its per-value conversion is the cheaper one (sealing runs inside
    # observe()). Standard sizes with "<": q and Q 8 bytes, i 4, H 2.
    return struct.pack(f"<{len(values)}{code}", *values)


def unpack_column(code: str, data: bytes) -> list[Any]:
    """The inverse of :func:`pack_column`."""
    values = array(code)
    values.frombytes(data)
    if sys.byteorder != "little":
        values.byteswap()
    return values.tolist()
