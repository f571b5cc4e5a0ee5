"""R13: a log truncated below offsets already read, answered from the ring.

When an out-of-sync replica becomes leader, the log end moves back and records the monitor
already read are gone. The tracker's ring remembers (offset, stream, sequence) for the last
``ring_size`` stamped records of the partition, in read order (offsets only grow), so the
truncated ones are exactly the ring entries at offsets ``>= new_end_offset``:

* a sequence that is also held by a surviving entry (it was read twice) is still in the
  log and is not reported;
* every other one becomes part of a ``truncated`` gap (one per run of consecutive
  sequences per stream); it is no longer "seen", so a re-sent copy counts as recovered,
  not as a duplicate;
* truncated offsets older than the ring are counted ``unaccounted`` (they may include
  unstamped and control records);
* the ring is rewound to ``new_end_offset``, so the records written there next are new.

The same rule answers a log that *diverged* at an offset (see
:mod:`gapwatch.core.divergence`): everything read at and after it is gone, whatever the
new log holds there now.

These functions are the tracker's own code, kept in a module of their own for size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gapwatch.core.model import (
    NO_EVENTS,
    Event,
    Gap,
    GapCause,
    GapState,
    RecordsTruncated,
)
from gapwatch.core.stream import Stream, find_range

if TYPE_CHECKING:
    from gapwatch.core.tracker import PartitionTracker


def truncate(
    t: PartitionTracker, new_end: int, now: float, *, beyond_ring: bool = False
) -> tuple[Event, ...]:
    """Apply a truncation to ``new_end`` (exclusive end offset); see the module docstring.

    ``beyond_ring``: the caller found the log differing from the ring's oldest entry, so
    the divergence may be deeper than the ring (counted ``truncations_beyond_ring``).
    """
    offsets, seqs, streams, mask = t._ring_offsets, t._ring_seqs, t._ring_streams, t._mask
    n = t._n
    oldest = t.ring_start()
    j = n
    while j > oldest and offsets[(j - 1) & mask] >= new_end:
        j -= 1
    if j == n:
        return NO_EVENTS  # nothing read at or above the new end: not a truncation of ours
    previous_end = offsets[(n - 1) & mask] + 1
    unaccounted = 0
    if j == oldest and offsets[oldest & mask] > new_end and oldest > 0:
        unaccounted = offsets[oldest & mask] - new_end

    gone: dict[Stream, set[int]] = {}
    for k in range(j, n):
        st = streams[k & mask]
        if st is not None:
            gone.setdefault(st, set()).add(seqs[k & mask])
    for k in range(oldest, j):
        st = streams[k & mask]
        if st is not None and st in gone:
            gone[st].discard(seqs[k & mask])

    tracked = {id(s) for s in t._streams.values()} | {id(s) for s in t._retired.values()}
    gaps: list[Gap] = []
    for st, lost in gone.items():
        runs = _runs(sorted(s for s in lost if find_range(st.ranges, s) < 0))
        for first, last in runs:
            gap = _truncated_gap(t, st, first, last, now)
            t._book.add(gap, st, watch=id(st) in tracked)
            gaps.append(gap)
    count = sum(g.count for g in gaps)
    t._counters.truncated += count
    t._counters.truncated_unaccounted += unaccounted
    t._counters.truncations_beyond_ring += beyond_ring

    # Rewind: entries at and above ``j`` are gone; the slots they shared with older
    # entries are no longer valid either.
    for k in range(j, n):
        streams[k & mask] = None
    t._ring_floor = max(t._ring_floor, n - (mask + 1), 0)
    t._records_base += n - j
    t._n = j
    return (
        RecordsTruncated(
            t.topic,
            t.partition,
            new_end,
            previous_end,
            tuple(gaps),
            count,
            unaccounted,
            now,
            beyond_ring,
        ),
    )


def _runs(values: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for v in values:
        if runs and runs[-1][1] + 1 == v:
            runs[-1] = (runs[-1][0], v)
        else:
            runs.append((v, v))
    return runs


def _truncated_gap(t: PartitionTracker, st: Stream, first: int, last: int, now: float) -> Gap:
    key = t._key(st.producer, st.epoch)
    generation = st.generation
    return Gap(
        id=t._book.new_id(key, first, generation, GapCause.TRUNCATION),
        topic=t.topic,
        partition=t.partition,
        producer=st.producer,
        epoch=st.epoch,
        first_seq=first,
        last_seq=last,
        count=last - first + 1,
        state=GapState.TRUNCATED,
        cause=GapCause.TRUNCATION,
        opened_at=now,
        updated_at=now,
        generation=generation,
    )
