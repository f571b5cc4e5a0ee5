"""R16: offsets deleted by retention before the monitor read them (a *skip*).

Nobody can tell what the deleted offsets held, so nothing about them is a loss, and what
the tracker expected next of each stream no longer holds. At a skip:

* every current stream is marked; its next record that is not simply in order decides:

  a. inside one of its missing ranges: R6/R7 as usual (the mark stays);
  b. ahead of ``high + 1``: a new baseline, no gap (as first sight, R2; earlier
     sequences arriving afterwards are ``late`` under R9 until the confirmation rule
     holds for the new baseline);
  c. at or below ``high`` with a record timestamp strictly newer than the stream's
     newest record: the producer restarted among the deleted records (R8's tie-break,
     for any sequence): a new generation with this baseline, one ``SequenceReset``;
  d. otherwise R8-R10 as usual (a retried copy keeps its original timestamp: a
     duplicate), and the mark stays.

  An in-order record ends the mark (nothing of that stream was deleted). While a stream
  is still marked, a new epoch of it is not a witnessed restart (no head loss, R3), and
  acknowledged sequences a producer report claims above ``high`` are ``UnknownFate``
  rather than a tail gap (R12): they may have been deleted unread.
* every gap open at the skip may have had its late records among the deleted offsets.
  Such a gap still heals or shrinks with records that do arrive, but when the
  confirmation rule (R11) holds it becomes ``unknown`` (counted ``gaps_unknown``, not
  ``missing``): paging someone for a loss that retention may have caused helps nobody.
  Gaps confirmed before the skip stay confirmed, and all counters are kept.

These functions are the tracker's own code, kept in a module of their own for size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from gapwatch.core.model import NO_EVENTS, Event, Gap, GapState, GapUnknown, RecordsSkipped
from gapwatch.core.reset import reset
from gapwatch.core.ring import reset_reference_ts
from gapwatch.core.stream import Stream, find_range, remove_gap_ranges

if TYPE_CHECKING:
    from gapwatch.core.tracker import PartitionTracker


def skip(t: PartitionTracker, first_offset: int, last_offset: int, now: float) -> tuple[Event, ...]:
    """Offsets ``first_offset..last_offset`` (inclusive) were deleted unread."""
    if last_offset < first_offset:
        return NO_EVENTS
    for st in t._streams.values():
        # The mark is the skip's last offset: a stream whose newest record is above it
        # has advanced in order since, and the mark no longer applies.
        t._rebase[st] = last_offset
    t._doubtful.update(t._book.open)
    count = last_offset - first_offset + 1
    return (RecordsSkipped(t.topic, t.partition, first_offset, last_offset, count, now),)


def is_unresolved(t: PartitionTracker, st: Stream) -> bool:
    """Whether ``st`` has read nothing new since a skip (its next record is unknown)."""
    mark = t._rebase.get(st)
    return mark is not None and st.high_offset <= mark


def after_skip(
    t: PartitionTracker, i: int, st: Stream, seq: int, offset: int, ts: int, now: float
) -> Sequence[Event] | None:
    """Cases a-d of the module docstring for a marked stream; ``None``: apply R6-R10."""
    mark = t._rebase.pop(st)
    if st.high_offset > mark:
        return None  # advanced in order since the skip
    aux = st.aux
    if aux is not None and aux.ranges and find_range(aux.ranges, seq) >= 0:
        t._rebase[st] = mark  # (a)
        return None
    if seq > st.high:  # (b)
        st.high = seq
        st.high_offset = offset
        t._young[st] = (seq, now)
        return NO_EVENTS
    if ts > reset_reference_ts(t, st):  # (c)
        return reset(t, i, st, offset, ts, now, seq=seq)
    t._rebase[st] = mark  # (d)
    return None


def close_unknown(t: PartitionTracker, gap: Gap, now: float) -> GapUnknown:
    """The confirmation rule held for a gap open at a skip: ``unknown``, not lost."""
    t._doubtful.discard(gap.id)
    done = replace(gap, state=GapState.UNKNOWN, updated_at=now)
    st = t._book.owner.get(gap.id)
    if st is not None and st.aux is not None:
        remove_gap_ranges(st.aux.ranges, gap.id)
        st.drop_aux_if_empty()
    t._book.close(done)
    t._counters.gaps_unknown += 1
    return GapUnknown(done)
