"""R2-R4: a record that is not of its producer's current stream.

Either the producer is unknown here (R2, first sight: the record is a baseline), or the
record's epoch is newer than the current stream's (R3: the old stream is retired, and a
head gap opens if the new epoch was first seen past sequence 0 while the tracker watched
the previous one), or older (R4: it may still fill a gap of that retired epoch, else it is
a zombie). A producer report that arrived before its stream did is applied here, once
the stream exists.

These functions are the tracker's own code, kept in a module of their own for size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gapwatch.core.housekeeping import evict_for_cap
from gapwatch.core.late import fill
from gapwatch.core.model import (
    NO_EVENTS,
    EpochStarted,
    Event,
    Gap,
    GapCause,
    GapOpened,
    GapState,
    ZombieEpoch,
)
from gapwatch.core.reports import adopt_orphans
from gapwatch.core.ring import high_record_ts
from gapwatch.core.skip import is_unresolved
from gapwatch.core.stream import Stream, find_range
from gapwatch.core.wire import Stamp

if TYPE_CHECKING:
    from gapwatch.core.tracker import PartitionTracker


def first_sight(
    t: PartitionTracker, i: int, offset: int, ts: int, stamp: Stamp, now: float
) -> Sequence[Event]:
    """R2: an unknown producer; ``stamp.seq`` is its baseline (ring slot ``i``)."""
    events: list[Event] = []
    if len(t._streams) + len(t._retired) >= t.config.max_streams:
        events.extend(evict_for_cap(t, now))
    st = Stream(stamp.producer, stamp.epoch, stamp.seq, offset, now)
    t._streams[stamp.producer] = st
    if stamp.seq > 0:
        t._young[st] = (stamp.seq, now)
    t._ring_streams[i] = st
    t._counters.streams += 1
    # No gap of a stream seen for the first time exists yet, so nothing to split.
    adopt_orphans(t, st)
    return events or NO_EVENTS


def new_epoch(
    t: PartitionTracker, i: int, offset: int, ts: int, stamp: Stamp, now: float, old: Stream
) -> Sequence[Event]:
    """R3: a newer epoch of a tracked producer retires ``old`` and starts a stream."""
    producer, seq = stamp.producer, stamp.seq
    events: list[Event] = []
    if len(t._streams) + len(t._retired) >= t.config.max_streams:
        events.extend(evict_for_cap(t, now))
    if t._streams.get(producer) is old:  # unless the cap just evicted it
        t._retired[(producer, old.epoch)] = old
    # After a skip (R16) the new epoch may have begun among the deleted records.
    witnessed = not (t._rebase and is_unresolved(t, old))
    t._rebase.pop(old, None)
    st = Stream(producer, stamp.epoch, seq, offset, now)
    t._streams[producer] = st
    t._ring_streams[i] = st
    t._counters.streams += 1
    key = t._key(producer, stamp.epoch)
    events.append(EpochStarted(key, old.epoch, seq, offset, now))
    if seq > 0 and witnessed:
        # Head loss: we watched the previous epoch, so this one started while we were
        # reading and its records 0..seq-1 should be here.
        gid = t._book.new_id(key, 0, 0, GapCause.HEAD)
        gap = Gap(
            id=gid,
            topic=t.topic,
            partition=t.partition,
            producer=producer,
            epoch=stamp.epoch,
            first_seq=0,
            last_seq=seq - 1,
            count=seq,
            state=GapState.OPEN,
            cause=GapCause.HEAD,
            opened_at=now,
            updated_at=now,
            offset_before=old.high_offset,
            offset_after=offset,
            timestamp_before_ms=high_record_ts(t, old),
            timestamp_after_ms=ts,
        )
        t._book.add(gap, st)
        events.append(GapOpened(gap))
    # After the head gap opened: the reports' failed ranges may cover it (R12).
    events.extend(adopt_orphans(t, st))
    return events


def old_epoch(
    t: PartitionTracker, i: int, offset: int, ts: int, stamp: Stamp, now: float, current: Stream
) -> Sequence[Event]:
    """R4: a record of an epoch older than ``current``: fills a retired gap, or a zombie."""
    retired = t._retired.get((stamp.producer, stamp.epoch))
    if retired is not None and retired.aux is not None:
        k = find_range(retired.aux.ranges, stamp.seq)
        if k >= 0:
            t._ring_streams[i] = retired
            return fill(t, retired, k, stamp.seq, offset, ts, now)
    # Not attributable to a stream: the ring must not name it on truncation.
    t._ring_streams[i] = None
    t._counters.zombies += 1
    key = t._key(stamp.producer, stamp.epoch)
    return (ZombieEpoch(key, current.epoch, stamp.seq, offset, now),)
