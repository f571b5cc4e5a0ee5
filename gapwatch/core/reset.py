"""R8: a producer restarted the same epoch, so its stream starts a new generation.

The restart is recognised by the tracker (record 0 newer than the stream's newest record,
R8) or after a skip (any sequence going back with a newer timestamp, R16 c); either way
the old generation's gaps are kept for R11 to decide but no longer watched, since a record
of the old run can no longer be told apart from one of the new run.

These functions are the tracker's own code, kept in a module of their own for size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gapwatch.core.model import Event, SequenceReset
from gapwatch.core.stream import Stream, StreamAux

if TYPE_CHECKING:
    from gapwatch.core.tracker import PartitionTracker


def reset(
    t: PartitionTracker, i: int, old: Stream, offset: int, ts: int, now: float, *, seq: int = 0
) -> tuple[Event, ...]:
    """Replace ``old`` by its next generation, first seen at ``seq`` (ring slot ``i``)."""
    generation = old.generation + 1
    # The old generation's gaps stay (and are confirmed by R11), but nothing that
    # arrives from now on can be told apart from the new run, so they are unwatched.
    t._book.detach_stream(old)
    t._young.pop(old, None)
    t._rebase.pop(old, None)
    st = Stream(old.producer, old.epoch, seq, offset, now, StreamAux(generation))
    if seq > 0:
        t._young[st] = (seq, now)
    t._streams[old.producer] = st
    t._ring_streams[i] = st
    t._reporting.pop(old, None)
    t._counters.resets += 1
    key = t._key(old.producer, old.epoch)
    return (SequenceReset(key, old.high, generation, offset, now),)
