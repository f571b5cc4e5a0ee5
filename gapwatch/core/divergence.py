"""R13, second half: where the log stopped being the log that was read.

After a leader change the new leader's log may differ from what the monitor read, even
when its end is above the read position: an out-of-sync replica became leader and
producers appended to it before the monitor looked. Kafka replicas agree on a prefix and
differ after it, so the divergence point is the first offset whose record is not the
one the tracker read. The monitor re-reads the log from :func:`verify_from` and hands the
records here; the ring's (offset, producer, epoch, sequence) entries are compared with
them in offset order:

* an entry whose offset holds a different stamp, an unstamped record, nothing (a hole),
  or lies at or above the new log end, is the divergence point;
* entries the ring holds for records it could not attribute to a stream (zombie
  epochs) are skipped: only the sequence is known, so they prove nothing;
* if even the oldest entry differs, the divergence may be older than the ring can tell:
  the ring's records are reported exactly and the depth is unknown (``beyond_ring``).

The result feeds :meth:`PartitionTracker.log_diverged_at`, which is the truncation rule
applied at the divergence point. These functions are the tracker's own code, kept in a
module of their own for size.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from gapwatch.core.wire import Stamp

if TYPE_CHECKING:
    from gapwatch.core.tracker import PartitionTracker


def verify_from(t: PartitionTracker) -> int | None:
    """The oldest offset the ring can verify, or ``None`` if it holds nothing."""
    start = t.ring_start()
    if start >= t._n:
        return None
    return t._ring_offsets[start & t._mask]


def newest_read(t: PartitionTracker, before: int | None = None) -> tuple[int, Stamp] | None:
    """The newest (offset, stamp) the ring holds below ``before``, or ``None``.

    A probe: if the log still holds exactly this record, it holds everything before it
    too (replicas agree on a prefix), so only records after it need comparing. The
    caller picks ``before`` so that the probe was read from the previous leader (records
    read after a leader change may come from the new one and prove nothing).
    """
    offsets, streams, mask = t._ring_offsets, t._ring_streams, t._mask
    for k in range(t._n - 1, t.ring_start() - 1, -1):
        st = streams[k & mask]
        if st is not None and (before is None or offsets[k & mask] < before):
            return offsets[k & mask], Stamp(st.producer, st.epoch, t._ring_seqs[k & mask])
    return None


def find_divergence(
    t: PartitionTracker,
    log: Iterable[tuple[int, Stamp | None]],
    *,
    log_start: int,
    log_end: int,
) -> tuple[int, bool] | None:
    """The first ring offset the log no longer holds as read, and whether it is the
    ring's oldest verifiable entry (``beyond_ring``); ``None`` if the log agrees.

    ``log`` is every record of the log from ``log_start`` (at or below the ring's oldest
    offset, or the new log start if retention removed more) up to ``log_end`` (the new
    log end), in offset order, with its stamp (``None`` for unstamped records). Ring
    entries below ``log_start`` are not compared (retention, not divergence).
    """
    offsets, seqs, streams, mask = t._ring_offsets, t._ring_seqs, t._ring_streams, t._mask
    records = iter(log)
    current: tuple[int, Stamp | None] | None = next(records, None)
    first_compared = True
    for k in range(t.ring_start(), t._n):
        offset, st = offsets[k & mask], streams[k & mask]
        if offset < log_start or st is None:
            continue
        if offset >= log_end:
            return offset, first_compared and _is_wrapped(t)
        while current is not None and current[0] < offset:
            current = next(records, None)
        stamp = None if current is None or current[0] != offset else current[1]
        if (
            stamp is None
            or stamp.seq != seqs[k & mask]
            or stamp.producer != st.producer
            or stamp.epoch != st.epoch
        ):
            return offset, first_compared and _is_wrapped(t)
        first_compared = False
    return None


def _is_wrapped(t: PartitionTracker) -> bool:
    # Records were read before the ring's oldest entry: a divergence there may be deeper.
    return t.ring_start() + t._records_base > 0
