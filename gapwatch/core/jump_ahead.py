"""R5: a record ahead of its stream's next sequence opens a gap at once.

The gap is ``high+1..seq-1``, bounded by the record just before it (the stream's high
record, whose timestamp the ring may still hold) and the record just read. If the
producer already reported failed ranges inside it, it opens cut at their boundaries
(R12), so that every gap is entirely told or entirely silent.

This function is the tracker's own code, kept in a module of its own for size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gapwatch.core.model import Event, Gap, GapCause, GapOpened, GapState
from gapwatch.core.reports import open_gap
from gapwatch.core.ring import high_record_ts
from gapwatch.core.stream import Stream

if TYPE_CHECKING:
    from gapwatch.core.tracker import PartitionTracker


def jump_ahead(
    t: PartitionTracker, st: Stream, seq: int, offset: int, ts: int, now: float
) -> Sequence[Event]:
    """Open the gap before ``seq`` (``seq > st.high + 1``) and advance ``st`` to it."""
    first, last = st.high + 1, seq - 1
    aux = st.ensure_aux()
    key = t._key(st.producer, st.epoch)
    gap = Gap(
        id=t._book.new_id(key, first, aux.generation, GapCause.SEQUENCE),
        topic=t.topic,
        partition=t.partition,
        producer=st.producer,
        epoch=st.epoch,
        first_seq=first,
        last_seq=last,
        count=last - first + 1,
        state=GapState.OPEN,
        cause=GapCause.SEQUENCE,
        opened_at=now,
        updated_at=now,
        offset_before=st.high_offset,
        offset_after=offset,
        timestamp_before_ms=high_record_ts(t, st),
        timestamp_after_ms=ts,
        generation=aux.generation,
    )
    st.high = seq
    st.high_offset = offset
    if aux.told:
        return open_gap(t, st, gap)  # R12: cut at failed-range boundaries
    t._book.add(gap, st)
    return (GapOpened(gap),)
