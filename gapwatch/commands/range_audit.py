"""``gapwatch audit``'s reader: a one-shot check of a topic's offset or time range, no group.

A throwaway consumer (no group, nothing committed) reads each chosen partition from its
start offset up to the end offset captured when the audit began, feeding a fresh tracker
per partition. Because every record of the range has been read before anything is judged,
the grace period is 0: a reordered record anywhere in the range heals its gap, and what is
still missing at the end is loss within the range. Streams first seen inside the range take
their first sequence as baseline (loss before the range start is not claimed).

Records are fetched by :class:`~gapwatch.kafka.aiokafka_consumer.RecordFetcher` (without a
``ConsumerRecord`` each where the aiokafka version allows it) and go through the monitor's
record path (:func:`~gapwatch.monitor.ingest.recordpath.feed_records`, without latencies),
fetched as the monitor fetches (:func:`audit_fetch_settings`) and, in the ``gapwatch audit``
command, with the monitor's GC settings: the audit has no HTTP server and no checkpoints, so
it reads at least as fast as the monitor (``bench/bench_audit.py``, ``docs/benchmarks.md``).
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import UnknownTopicOrPartitionError

from gapwatch.core.config import DEFAULT_IDLE_EVICTION_S, TrackerConfig
from gapwatch.core.events import Event
from gapwatch.core.model import Gap
from gapwatch.core.stamps import StampReader
from gapwatch.core.tracker import PartitionTracker
from gapwatch.errors import GapwatchError
from gapwatch.kafka.aiokafka_consumer import RecordFetcher
from gapwatch.kafka.aiokafka_fetch_sessions import install_fetch_sessions
from gapwatch.kafka.settings import KafkaSettings
from gapwatch.kafka.startup_errors import explained_start
from gapwatch.kafka.topics import explain_code
from gapwatch.monitor.ingest.recordpath import feed_records

_offset_of = attrgetter("offset")


class AuditError(GapwatchError):
    """The audit could not run (unknown topic, bad range)."""


@dataclass(frozen=True, slots=True)
class AuditResult:
    """What an audit found: every gap, and per-partition counters."""

    gaps: tuple[Gap, ...]
    counters: Mapping[int, Mapping[str, int]]
    ranges: Mapping[int, tuple[int, int]]  # partition -> (first offset, end offset)

    @property
    def has_loss(self) -> bool:
        """Whether any gap is a loss (confirmed or truncated)."""
        return any(gap.is_loss for gap in self.gaps)


def audit_fetch_settings() -> dict[str, Any]:
    """The audit consumer's fetch settings: the monitor's records per ``getmany``, fetch
    size and wait, not aiokafka's defaults. The isolation level stays aiokafka's default
    (read uncommitted), as the audit has always read.

    Except ``fetch_min_bytes``: 1, not the monitor's 64 KiB. The audit reads records that
    are already written; a minimum would only make the broker hold the last fetch of a
    range that ends with less than that for ``fetch_max_wait_ms``."""
    kafka = KafkaSettings()
    return {
        "max_poll_records": kafka.max_poll_records,
        "fetch_max_wait_ms": kafka.fetch_max_wait_ms,
        "fetch_min_bytes": 1,
        "max_partition_fetch_bytes": kafka.max_partition_fetch_bytes,
    }


async def run_audit(
    *,
    client_kwargs: Mapping[str, Any],
    topic: str,
    partitions: Sequence[int] | None = None,
    from_offset: int | None = None,
    to_offset: int | None = None,
    from_time_ms: int | None = None,
    deadline_s: float = 300.0,
    read_batches_directly: bool = True,
    fetch_sessions: bool = True,
) -> AuditResult:
    """Audit ``topic`` (all partitions unless given) over the offset or time range.

    ``read_batches_directly=False`` reads through aiokafka's public ``getmany()`` instead of
    :class:`~gapwatch.kafka.aiokafka_consumer.RecordFetcher`'s direct path (same results);
    ``fetch_sessions=False`` fetches without incremental fetch sessions."""
    consumer = AIOKafkaConsumer(
        **client_kwargs,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="none",
        **audit_fetch_settings(),
    )
    try:
        async with explained_start(client_kwargs):
            await consumer.start()
        if fetch_sessions:
            install_fetch_sessions(consumer)
        fetcher = RecordFetcher(consumer, direct=read_batches_directly)
        async with asyncio.timeout(deadline_s):
            return await _audit(
                client_kwargs,
                consumer,
                fetcher,
                topic,
                partitions,
                from_offset,
                to_offset,
                from_time_ms,
            )
    finally:
        await consumer.stop()


async def _partitions_of(client_kwargs: Mapping[str, Any], topic: str) -> set[int]:
    admin = AIOKafkaAdminClient(**client_kwargs)
    try:
        async with explained_start(client_kwargs):
            await admin.start()
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    for entry in described:
        code = entry["error_code"]
        if entry["topic"] == topic and code and code != UnknownTopicOrPartitionError.errno:
            # Not a missing topic (that is said below): not authorized, for example.
            raise AuditError(f"cannot describe topic {topic!r}: {explain_code(code, None)}")
    return {
        p["partition"]
        for t in described
        if t["topic"] == topic and not t["error_code"]
        for p in t["partitions"]
    }


async def _audit(
    client_kwargs: Mapping[str, Any],
    consumer: AIOKafkaConsumer,
    fetcher: RecordFetcher,
    topic: str,
    partitions: Sequence[int] | None,
    from_offset: int | None,
    to_offset: int | None,
    from_time_ms: int | None,
) -> AuditResult:
    available = await _partitions_of(client_kwargs, topic)
    if not available:
        raise AuditError(f"topic {topic!r} does not exist or has no partitions")
    chosen = sorted(available if partitions is None else set(partitions))
    if not set(chosen) <= available:
        raise AuditError(f"topic {topic!r} has no partition(s) {sorted(set(chosen) - available)}")
    tps = [TopicPartition(topic, p) for p in chosen]
    consumer.assign(tps)
    begins = await consumer.beginning_offsets(tps)
    ends = await consumer.end_offsets(tps)
    starts: dict[TopicPartition, int] = {}
    if from_time_ms is not None:
        found = await consumer.offsets_for_times({tp: from_time_ms for tp in tps})
        starts = {tp: (found[tp].offset if found[tp] else ends[tp]) for tp in tps}
    else:
        starts = {tp: max(begins[tp], from_offset or 0) for tp in tps}
    stops = {tp: ends[tp] if to_offset is None else min(ends[tp], to_offset) for tp in tps}
    config = TrackerConfig(grace_period=0.0, idle_eviction=DEFAULT_IDLE_EVICTION_S)
    trackers = {tp: PartitionTracker(topic, tp.partition, config=config) for tp in tps}
    for tp in tps:
        consumer.seek(tp, starts[tp])
    pending = {tp for tp in tps if starts[tp] < stops[tp]}
    now = time.time()
    stamps = StampReader()
    events: list[Event] = []  # the tracker's events: the audit reads its gaps at the end
    while pending:
        batches = await fetcher.getmany(*pending, timeout_ms=1000)
        for tp, records in batches.items():
            stop = stops[tp]
            if records and records[-1].offset >= stop:
                records = records[: bisect_left(records, stop, key=_offset_of)]
                pending.discard(tp)
            elif records and records[-1].offset + 1 >= stop:
                pending.discard(tp)
            feed_records(
                records, tracker=trackers[tp], stamps=stamps, latency=None, now=now, events=events
            )
            events.clear()
    gaps: list[Gap] = []
    for tp, tracker in trackers.items():
        tracker.note_read_position(read_offset=stops[tp], high_watermark=stops[tp], observed_at=now)
        tracker.tick(now)
        gaps.extend(tracker.gaps())
    gaps.sort(key=lambda g: (g.partition, g.producer, g.epoch, g.first_seq))
    return AuditResult(
        gaps=tuple(gaps),
        counters={tp.partition: t.counters.as_dict() for tp, t in trackers.items()},
        ranges={tp.partition: (starts[tp], stops[tp]) for tp in tps},
    )
