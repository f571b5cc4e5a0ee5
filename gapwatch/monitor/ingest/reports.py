"""Reads producer reports and hands those about owned partitions to their trackers.

The report topic is compacted per stream, so reading it from the start yields the
latest report of every stream. The reader keeps the newest report per stream (bounded by
``max_streams``, oldest dropped first) so that a partition assigned later (restart,
rebalance) still learns about producers that reported before: the tracker's rules make
applying the same report again harmless. Reports about partitions another instance owns
are only cached. Undecodable records are counted and skipped. How each producer says it
writes (``acks``, idempotence) goes to the durability audit's
:class:`~gapwatch.monitor.state.producer_writes.ProducerWritesBook`, when one is given.

The monitor creates the report topic at start if it is missing, exactly as producers would
(:func:`ensure_report_topic`): a consumer subscribed to a topic that does not exist yet only
notices it at its next metadata refresh (``metadata_max_age_ms``, 5 minutes), so reports of
producers started after the monitor would go unread that long.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from gapwatch.core.events import Event
from gapwatch.core.model import ProducerReport, StreamKey
from gapwatch.core.report_codec import ReportDecodeError, decode_report_with_settings
from gapwatch.gaps.fanout import EventFanout
from gapwatch.kafka.topics import (
    REPORT_TOPIC_CONFIGS,
    REPORT_TOPIC_PARTITIONS,
    TopicSetupError,
    ensure_topic,
)
from gapwatch.monitor.health import MonitorHealth
from gapwatch.monitor.state.partitions import OwnedPartitions, PartitionState
from gapwatch.monitor.state.producer_writes import ProducerWritesBook

log = logging.getLogger(__name__)


async def ensure_report_topic(admin: AIOKafkaAdminClient, topic: str) -> None:
    """Create ``topic`` with the producers' default report-topic settings unless it exists.

    Best effort, like the producers' own attempt: without the Create ACL it only logs, and
    reports are read once a producer (or an operator) has created the topic.
    """
    try:
        await ensure_topic(
            admin, topic, partitions=REPORT_TOPIC_PARTITIONS, configs=REPORT_TOPIC_CONFIGS
        )
    except (KafkaError, TopicSetupError) as exc:
        log.warning(
            "cannot create the producer report topic %s (%s); if it is created later, its "
            "reports are read only after the next metadata refresh (up to 5 minutes)",
            topic,
            exc,
        )


class ReportReader:
    """Tails the producer report topic for the whole process."""

    def __init__(
        self,
        *,
        client_kwargs: Mapping[str, Any],
        topic: str,
        lock: asyncio.Lock,
        partitions: OwnedPartitions,
        fanout: EventFanout,
        health: MonitorHealth,
        max_streams: int = 100_000,
        clock: Callable[[], float] = time.time,
        writes: ProducerWritesBook | None = None,
    ) -> None:
        self._kwargs = dict(client_kwargs)
        self._writes = writes
        self._topic = topic
        # The consumer loop's lock (its rule 4): trackers are changed by one task at a time.
        self._lock = lock
        self._partitions = partitions
        self._fanout = fanout
        self._health = health
        self._max_streams = max_streams
        self._clock = clock
        self._latest: dict[StreamKey, ProducerReport] = {}
        self._reader: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        """Connect and subscribe (no group: every instance reads every report)."""
        self._reader = AIOKafkaConsumer(
            **self._kwargs,
            group_id=None,
            enable_auto_commit=False,
            # Reports are few and compacted: reading all of them at start is the point.
            auto_offset_reset="earliest",
        )
        await self._reader.start()
        self._reader.subscribe(topics=[self._topic])

    async def stop(self) -> None:
        """Disconnect."""
        if self._reader is not None:
            await self._reader.stop()

    async def run(self) -> None:
        """Read reports until cancelled."""
        reader = self._reader
        assert reader is not None, "start() first"
        while True:
            batches = await reader.getmany(timeout_ms=1000, max_records=1000)
            reports: list[ProducerReport] = []
            for records in batches.values():
                for record in records:
                    try:
                        report, settings = decode_report_with_settings(record.value)
                    except ReportDecodeError as exc:
                        self._health.reports_malformed += 1
                        log.warning(
                            "undecodable producer report at offset %d: %s", record.offset, exc
                        )
                        continue
                    reports.append(report)
                    if self._writes is not None:
                        # The record's time, not the reading's: at start every report is
                        # read at once, also those of producers long gone.
                        self._writes.note(report, settings, at=record.timestamp / 1000)
            if reports:
                async with self._lock:
                    self._apply(reports)

    def _apply(self, reports: list[ProducerReport]) -> None:
        now = self._clock()
        events: list[Event] = []
        for report in reports:
            key = report.key
            self._latest.pop(key, None)  # re-insert: dict order = oldest report first
            self._latest[key] = report
            state = self._partitions.get(report.topic, report.partition)
            if state is not None and state.is_restored:
                events.extend(state.tracker.apply_producer_report(report, now))
                self._health.reports_read += 1
        while len(self._latest) > self._max_streams:
            del self._latest[next(iter(self._latest))]
        self._fanout.publish(events, now)

    def apply_cached(self, state: PartitionState) -> None:
        """Apply the cached reports about ``state``'s partition, just restored (called by
        the consumer under its lock, as each assigned partition is restored)."""
        now = self._clock()
        events: list[Event] = []
        for report in tuple(self._latest.values()):
            if report.topic == state.topic and report.partition == state.partition:
                events.extend(state.tracker.apply_producer_report(report, now))
                self._health.reports_read += 1
        self._fanout.publish(events, now)
