"""Lookups in the tracker's truncation ring (read-only, off the hot path).

The ring holds, for the last ``ring_size`` stamped records of the partition, the offset,
stream, sequence and record timestamp, in read order, so offsets only grow along it. A
stream does not keep its newest record's timestamp (memory: see ``docs/benchmarks.md``);
it is found here by the record's offset while the ring still holds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gapwatch.core.stream import Stream

if TYPE_CHECKING:
    from gapwatch.core.tracker import PartitionTracker


def ring_index_of(t: PartitionTracker, st: Stream) -> int:
    """Ring index (``ring_start()..n-1``) of ``st``'s high record, or -1 if it left."""
    offsets, mask, n = t._ring_offsets, t._mask, t._n
    lo, hi = t.ring_start(), n
    target = st.high_offset
    while lo < hi:  # binary search: offsets only grow along the ring
        mid = (lo + hi) // 2
        if offsets[mid & mask] < target:
            lo = mid + 1
        else:
            hi = mid
    while lo < n and offsets[lo & mask] == target:
        if t._ring_streams[lo & mask] is st and t._ring_seqs[lo & mask] == st.high:
            return lo
        lo += 1
    return -1


def high_record_ts(t: PartitionTracker, st: Stream) -> int | None:
    """Timestamp of ``st``'s high record while the ring still holds it, else None."""
    k = ring_index_of(t, st)
    return None if k < 0 else t._ring_ts[k & t._mask]


def reset_reference_ts(t: PartitionTracker, st: Stream) -> int:
    """The timestamp R8 compares a new record 0 against (see the tracker's rules)."""
    ts = high_record_ts(t, st)
    if ts is None:
        start = t.ring_start()
        # st's newest record left the ring, so the ring's oldest record was read after it
        # and is at least as new (up to clock skew between producers).
        ts = t._ring_ts[start & t._mask] if start < t._n else -1
    return ts
