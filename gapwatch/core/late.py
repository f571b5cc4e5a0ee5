"""R6 and R7: a record whose sequence is inside one of its stream's missing ranges.

In an open gap it is late (R6): the gap shrinks from either end, splits in two (the right
piece gets the id of its own first sequence and the record as its bounding record), or
heals. In a confirmed or truncated gap it is recovered (R7): counted on the gap, whose
loss count stays; a confirmed gap whose every record came back becomes ``recovered``.

These functions are the tracker's own code, kept in a module of their own for size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from gapwatch.core.model import Event, Gap, GapHealed, GapRecovered, GapShrunk, GapSplit, GapState
from gapwatch.core.stream import Stream, take_seq

if TYPE_CHECKING:
    from gapwatch.core.tracker import PartitionTracker


def fill(
    t: PartitionTracker, st: Stream, k: int, seq: int, offset: int, ts: int, now: float
) -> Sequence[Event]:
    """R6 (late) and R7 (recovered): ``seq`` is inside ``st``'s missing range ``k``."""
    aux = st.aux
    assert aux is not None  # the caller found a range
    r = aux.ranges[k]
    gap = t._book.active[r.gap_id]
    if gap.state is not GapState.OPEN:
        return _recovered(t, st, k, seq, now, gap)
    return _late(t, st, k, seq, offset, ts, now, gap)


def _late(
    t: PartitionTracker, st: Stream, k: int, seq: int, offset: int, ts: int, now: float, gap: Gap
) -> Sequence[Event]:
    aux = st.aux
    assert aux is not None
    t._counters.late += 1
    right = take_seq(aux.ranges, k, seq)
    if gap.first_seq == gap.last_seq:
        healed = replace(gap, state=GapState.HEALED, count=0, healed_at=now, updated_at=now)
        t._book.close(healed)
        st.drop_aux_if_empty()
        return (GapHealed(healed),)
    if seq == gap.first_seq:
        shrunk = replace(
            gap,
            first_seq=seq + 1,
            count=gap.count - 1,
            offset_before=offset,
            timestamp_before_ms=ts,
            updated_at=now,
        )
        t._book.update(shrunk)
        return (GapShrunk(shrunk, seq),)
    if seq == gap.last_seq:
        shrunk = replace(
            gap,
            last_seq=seq - 1,
            count=gap.count - 1,
            offset_after=offset,
            timestamp_after_ms=ts,
            updated_at=now,
        )
        t._book.update(shrunk)
        return (GapShrunk(shrunk, seq),)
    assert right is not None  # a middle sequence always splits
    left = replace(
        gap,
        last_seq=seq - 1,
        count=seq - gap.first_seq,
        offset_after=offset,
        timestamp_after_ms=ts,
        updated_at=now,
    )
    right_gap = replace(
        gap,
        id=t._book.new_id(gap.key, seq + 1, gap.generation, gap.cause),
        first_seq=seq + 1,
        count=gap.last_seq - seq,
        offset_before=offset,
        timestamp_before_ms=ts,
        updated_at=now,
    )
    t._book.update(left)
    # The split-off range already sits in the stream; re-point it at its own gap.
    right.gap_id = right_gap.id
    t._book.active[right_gap.id] = right_gap
    t._book.owner[right_gap.id] = st
    t._book.open[right_gap.id] = None
    t._counters.open_gaps += 1
    if gap.id in t._doubtful:
        t._doubtful.add(right_gap.id)  # both pieces were open at the skip (R16)
    return (GapSplit(left, right_gap, seq),)


def _recovered(
    t: PartitionTracker, st: Stream, k: int, seq: int, now: float, gap: Gap
) -> Sequence[Event]:
    aux = st.aux
    assert aux is not None
    t._counters.recovered += 1
    take_seq(aux.ranges, k, seq)
    recovered = gap.recovered + 1
    if recovered >= gap.count:
        state = GapState.RECOVERED if gap.state is GapState.CONFIRMED else gap.state
        done = replace(gap, recovered=recovered, state=state, updated_at=now)
        t._book.close(done)
        st.drop_aux_if_empty()
        return (GapRecovered(done, seq),)
    updated = replace(gap, recovered=recovered, updated_at=now)
    t._book.update(updated)
    return (GapRecovered(updated, seq),)
