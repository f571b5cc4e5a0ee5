"""What a mirror's source partition holds: the reads behind origins, duplicates and lag.

Each function asks one :class:`~gapwatch.kafka.partition_reader.PartitionReader` a bounded
question and returns plain facts; the decisions are the core's
(:mod:`gapwatch.core.origin`, :mod:`gapwatch.core.mirror_duplicates`). The source range of
a gap on the target is found through timestamps: MirrorMaker 2 keeps each record's
timestamp and partition number, so the target's records around a gap have the same
timestamps on the source. A scan starts at the first offset with the timestamp of the
record before the gap: that record has exactly this timestamp, so it is at or after that
offset, whatever the order of timestamps. Timestamps in a partition are only nearly in
order (several producers' clocks, retried batches), so the end is the first offset
``SLACK_MS`` after the record after the gap, and a scan stops earlier once it has read
``AFTER_MARGIN`` records past the first record of the stream beyond the range (a missing
record written late by a retry lands close behind its successors).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

from gapwatch.core.model import Gap
from gapwatch.core.origin import SourceScan
from gapwatch.kafka.partition_reader import PartitionReader

SLACK_MS: Final = 5000
AFTER_MARGIN: Final = 500
# The target's newest records: read this many from its end (a few may be transaction
# markers, which are not returned as records).
_TAIL_RECORDS: Final = 16


async def _offset_or_end(
    reader: PartitionReader, topic: str, partition: int, timestamp_ms: int, end: int
) -> int:
    found = await reader.offset_at(topic, partition, timestamp_ms)
    return end if found is None else found[0]


async def scan_for_gap(
    reader: PartitionReader, *, source_topic: str, gap: Gap, max_records: int
) -> SourceScan:
    """Read the source partition of ``gap`` (same number) around its bounding timestamps.

    From the first offset at ``timestamp_before_ms`` (the log start when the gap has no
    record before it) to the first at ``timestamp_after_ms + SLACK_MS`` (the log end when
    it has none after), or ``AFTER_MARGIN`` records past the stream's first record beyond
    the gap. Raises
    :class:`~gapwatch.kafka.partition_reader.PartitionMissingError` if the source has no
    such partition.
    """
    partition = gap.partition
    bounds = await reader.bounds(source_topic, partition)
    start = bounds.start
    if gap.timestamp_before_ms is not None:
        at = gap.timestamp_before_ms
        start = max(
            bounds.start, await _offset_or_end(reader, source_topic, partition, at, bounds.end)
        )
    stop = bounds.end
    if gap.timestamp_after_ms is not None:
        at = gap.timestamp_after_ms + SLACK_MS
        stop = await _offset_or_end(reader, source_topic, partition, at, bounds.end)
    found: set[int] = set()
    saw_before = False
    read = 0
    past_range_at: int | None = None  # records read when the stream first went past the gap
    async for record in reader.records(
        source_topic, partition, start=start, stop=stop, limit=max_records
    ):
        read += 1
        if past_range_at is not None and read - past_range_at >= AFTER_MARGIN:
            break
        stamp = record.stamp
        if stamp is None or stamp.producer != gap.producer or stamp.epoch != gap.epoch:
            continue
        if gap.first_seq <= stamp.seq <= gap.last_seq:
            found.add(stamp.seq)
        elif stamp.seq == gap.first_seq - 1:
            saw_before = True
        elif stamp.seq > gap.last_seq and past_range_at is None:
            past_range_at = read
    return SourceScan(
        found=frozenset(found),
        saw_before=saw_before,
        log_start=bounds.start,
        scan_start=start,
        hit_limit=read >= max_records and past_range_at is None,
    )


@dataclass(frozen=True, slots=True)
class Copies:
    """How often each asked-for sequence of one stream occurs in the range read."""

    copies: dict[int, int]
    hit_limit: bool


async def count_copies(
    reader: PartitionReader,
    *,
    source_topic: str,
    partition: int,
    producer: str,
    epoch: int,
    seqs: Collection[int],
    from_ms: int,
    to_ms: int,
    max_records: int,
) -> Copies:
    """Count the source's copies of ``seqs`` of one stream: from the first offset at
    ``from_ms`` (the oldest duplicate's timestamp, which its original has too) to the
    first at ``to_ms + SLACK_MS``, or ``AFTER_MARGIN`` records past the stream's first
    record beyond ``seqs``."""
    bounds = await reader.bounds(source_topic, partition)
    start = max(
        bounds.start,
        await _offset_or_end(reader, source_topic, partition, from_ms, bounds.end),
    )
    stop = await _offset_or_end(reader, source_topic, partition, to_ms + SLACK_MS, bounds.end)
    wanted = set(seqs)
    highest = max(wanted, default=-1)
    counts: Counter[int] = Counter()
    read = 0
    past_range_at: int | None = None
    async for record in reader.records(
        source_topic, partition, start=start, stop=stop, limit=max_records
    ):
        read += 1
        if past_range_at is not None and read - past_range_at >= AFTER_MARGIN:
            break
        stamp = record.stamp
        if stamp is None or stamp.producer != producer or stamp.epoch != epoch:
            continue
        if stamp.seq in wanted:
            counts[stamp.seq] += 1
        elif stamp.seq > highest and past_range_at is None:
            past_range_at = read
    return Copies(dict(counts), hit_limit=read >= max_records and past_range_at is None)


async def timestamps_at(
    reader: PartitionReader, *, topic: str, partition: int, offsets: Collection[int]
) -> list[int]:
    """The timestamps of the records at ``offsets`` (those the log still holds)."""
    if not offsets:
        return []
    low, high = min(offsets), max(offsets)
    wanted = set(offsets)
    return [
        record.timestamp_ms
        async for record in reader.records(
            topic, partition, start=low, stop=high + 1, limit=high - low + 1
        )
        if record.offset in wanted
    ]


async def newest_timestamp(reader: PartitionReader, *, topic: str, partition: int) -> int | None:
    """The newest record timestamp near the end of a partition; ``None`` if it is empty."""
    bounds = await reader.bounds(topic, partition)
    start = max(bounds.start, bounds.end - _TAIL_RECORDS)
    stamps = [
        record.timestamp_ms
        async for record in reader.records(
            topic, partition, start=start, stop=bounds.end, limit=_TAIL_RECORDS
        )
    ]
    return max(stamps) if stamps else None


@dataclass(frozen=True, slots=True)
class Unmirrored:
    """The source records newer than the target's newest: how many, and the oldest one's
    timestamp (``None`` when there are none)."""

    records: int
    oldest_timestamp_ms: int | None


async def unmirrored(
    reader: PartitionReader, *, topic: str, partition: int, newest_mirrored_ms: int | None
) -> Unmirrored:
    """How far the source runs ahead of a target whose newest record has timestamp
    ``newest_mirrored_ms`` (``None``: the target has nothing yet). Two offset requests,
    no records read: cheap enough to repeat every few seconds per partition."""
    bounds = await reader.bounds(topic, partition)
    if newest_mirrored_ms is None:
        first = await reader.offset_at(topic, partition, 0)
    else:
        first = await reader.offset_at(topic, partition, newest_mirrored_ms + 1)
    if first is None or first[0] >= bounds.end:
        return Unmirrored(0, None)
    offset = max(first[0], bounds.start)
    return Unmirrored(bounds.end - offset, first[1])
