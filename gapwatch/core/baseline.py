"""R9: baselines of streams first seen mid-way, kept only while they can still matter.

A stream first seen past sequence 0 (R2, a reset's new run seen mid-way, or a new
baseline after a skip, R16) may still receive its earlier records: Kafka can deliver a
producer's first batches out of order. Until the confirmation rule (R11) holds for the
first sight, such a record is counted ``late``; once it holds none can still arrive, so
the baseline is forgotten and a record below it is a duplicate (R10).

These functions are the tracker's own code, kept in a module of their own for size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gapwatch.core.model import NO_EVENTS, Event
from gapwatch.core.stream import Stream

if TYPE_CHECKING:
    from gapwatch.core.tracker import PartitionTracker


def is_before_base(t: PartitionTracker, st: Stream, seq: int, now: float) -> bool:
    """Whether ``seq`` is below ``st``'s baseline while R11 does not yet hold for it."""
    young = t._young.get(st)
    if young is None or seq >= young[0]:
        return False
    if t._is_settled(young[1], now):
        del t._young[st]  # no reordered record can still arrive: R10 from now on
        return False
    return True


def before_base(t: PartitionTracker) -> Sequence[Event]:
    """A record before the baseline: possibly reordered, so counted late, not a duplicate."""
    t._counters.late += 1
    return NO_EVENTS


def forget_settled(t: PartitionTracker, now: float) -> None:
    """Drop every baseline for which R11 now holds."""
    # Rebuilt rather than deleted from: a dict never gives back its table, and after a
    # monitor starts on a busy topic this one briefly holds every stream.
    t._young = {st: y for st, y in t._young.items() if not t._is_settled(y[1], now)}
