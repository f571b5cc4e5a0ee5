"""The monitor's read-only rows about a tracker's streams (:class:`StreamInfo`).

Built on request (``GET /streams``), never kept up to date on the record path: a row
gathers what lives in several places of the tracker (the stream, its baseline while R9
needs it, its missing ranges and open gaps, its newest record's timestamp in the ring).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gapwatch.core.model import StreamInfo
from gapwatch.core.ring import high_record_ts

if TYPE_CHECKING:
    from gapwatch.core.tracker import PartitionTracker


def stream_infos(t: PartitionTracker) -> list[StreamInfo]:
    """One row per tracked stream, current streams first, then retired epochs."""
    out = []
    for st in [*t._streams.values(), *t._retired.values()]:
        ranges = st.ranges
        open_ids = tuple(dict.fromkeys(r.gap_id for r in ranges if r.gap_id in t._book.open))
        out.append(
            StreamInfo(
                key=t._key(st.producer, st.epoch),
                generation=st.generation,
                base_seq=t._young.get(st, (0, 0.0))[0],
                high_seq=st.high,
                last_offset=st.high_offset,
                last_timestamp_ms=_or_unknown(high_record_ts(t, st)),
                last_seen=st.last_seen,
                missing=sum(r.last - r.first + 1 for r in ranges),
                open_gaps=open_ids,
            )
        )
    return out


def _or_unknown(ts: int | None) -> int:
    # Kafka's own "no timestamp" value, so the API field stays an integer.
    return -1 if ts is None else ts
