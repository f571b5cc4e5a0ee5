"""R11: when an open gap is confirmed lost, from the watermarks the consumer has read.

A gap opened at ``opened_at`` is confirmed once ``now >= opened_at + grace`` and the
consumer has read up to a high watermark observed at ``>= opened_at + grace``: by then a
reordered or retried record would have been read. This module keeps the second fact (the
latest time the consumer was caught up, and the watermarks it has not reached yet) and
walks the open gaps; the rule itself is :meth:`PartitionTracker._is_settled`, which R9 and
R12 apply as well. A gap that was open at a skip ends ``unknown`` instead (R16).

These functions are the tracker's own code, kept in a module of their own for size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gapwatch.core.model import NO_EVENTS, Event, GapConfirmed
from gapwatch.core.reports import mature_reports
from gapwatch.core.skip import close_unknown

if TYPE_CHECKING:
    from gapwatch.core.tracker import PartitionTracker

# How many pending high-watermark observations are remembered; dropping the oldest only
# delays a confirmation (a later observation satisfies it), never makes one wrong.
MAX_PENDING_HWM = 64


def caught_up(
    t: PartitionTracker, *, read_offset: int, high_watermark: int, observed_at: float
) -> Sequence[Event]:
    """Note how far the consumer has read against a watermark; confirm what that allows."""
    pending = t._hwm_pending
    if high_watermark <= read_offset:
        t._caught_up_at = max(t._caught_up_at, observed_at)
    else:
        pending.append((high_watermark, observed_at))
        if len(pending) > MAX_PENDING_HWM:
            del pending[0]
    if pending:
        keep = []
        for hwm, at in pending:
            if hwm <= read_offset:
                t._caught_up_at = max(t._caught_up_at, at)
            else:
                keep.append((hwm, at))
        t._hwm_pending = keep
    return confirm(t, observed_at)


def confirm(t: PartitionTracker, now: float) -> Sequence[Event]:
    """Confirm every open gap (and mature every report) for which R11 now holds."""
    events: list[Event] = []
    book = t._book
    for gid in [g for g in book.open if t._is_settled(book.active[g].opened_at, now)]:
        if gid in t._doubtful:
            events.append(close_unknown(t, book.active[gid], now))  # R16
        else:
            events.append(GapConfirmed(book.confirm(book.active[gid], now)))
    if t._reporting or t._orphans or t._told_orphans:
        events.extend(mature_reports(t, now))
    return events or NO_EVENTS
