"""R14: bounded memory. Idle streams are forgotten, and the number of streams is capped.

Both are counted (``evictions``) and reported (``StreamEvicted``), never silent. A stream
with an open gap is never evicted for idleness (its gap must still be decided); the cap
is hard and evicts the least recently seen streams, retired epochs first. An evicted
stream's open gaps stay and are confirmed by R11; its confirmed gaps stop being watched.

These functions are the tracker's own code, kept in a module of their own for size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gapwatch.core.model import Event, StreamEvicted
from gapwatch.core.stream import Stream

if TYPE_CHECKING:
    from gapwatch.core.tracker import PartitionTracker

# The cap evicts this fraction of max_streams at once, so a flood of new producers costs
# one scan per batch rather than one per record.
_CAP_BATCH_DIVISOR = 64


def _has_open_gap(t: PartitionTracker, st: Stream) -> bool:
    open_ids = t._book.open
    return any(r.gap_id in open_ids for r in st.ranges)


def _drop(t: PartitionTracker, st: Stream, reason: str, now: float) -> Event:
    t._book.detach_stream(st)
    t._reporting.pop(st, None)
    t._young.pop(st, None)
    t._rebase.pop(st, None)
    t._counters.evictions += 1
    t._counters.streams -= 1
    return StreamEvicted(t._key(st.producer, st.epoch), reason, now)


def sweep_idle(t: PartitionTracker, now: float) -> list[Event]:
    """Forget streams silent for ``idle_eviction`` seconds that have nothing pending."""
    cutoff = now - t.config.idle_eviction
    events: list[Event] = []
    for producer, st in list(t._streams.items()):
        if st.last_seen <= cutoff and st not in t._reporting and not _has_open_gap(t, st):
            del t._streams[producer]
            events.append(_drop(t, st, "idle", now))
    for key, st in list(t._retired.items()):
        if st.last_seen <= cutoff and st not in t._reporting and not _has_open_gap(t, st):
            del t._retired[key]
            events.append(_drop(t, st, "idle", now))
    return events


def evict_for_cap(t: PartitionTracker, now: float) -> list[Event]:
    """Make room below ``max_streams``: least recently seen first, retired epochs first."""
    excess = len(t._streams) + len(t._retired) - t.config.max_streams + 1
    batch = max(excess, t.config.max_streams // _CAP_BATCH_DIVISOR, 1)
    events: list[Event] = []
    retired = sorted(t._retired.items(), key=lambda kv: kv[1].last_seen)
    for key, st in retired[:batch]:
        del t._retired[key]
        events.append(_drop(t, st, "cap", now))
    batch -= len(events)
    if batch > 0:
        current = sorted(t._streams.items(), key=lambda kv: kv[1].last_seen)
        for producer, st in current[:batch]:
            del t._streams[producer]
            events.append(_drop(t, st, "cap", now))
    return events
