"""The gap log: every gap change of the fleet in one compacted Kafka topic.

**Writing** (:class:`GapLogPublisher`, an event subscriber of the owning instance):
``handle()`` only puts changes into a pending map keyed like the log (group + gap id), so
consumption never waits for Kafka; a newer change of a gap still pending replaces the
older one (compaction would keep only the newer anyway). A sender task writes pending
changes to partition 0 (``acks=all``, idempotent, so per-key order holds) and retries
failed ones with backoff until they are acknowledged; a failed change is dropped only if
a newer change of the same gap is already pending.

**The guarantee** (docs/alerting.md, "Gap log"): offsets of the watched partitions are
committed only after the gap log has acknowledged every change emitted before the
checkpoint. :meth:`GapLogPublisher.flush` is the checkpoint's barrier: it fails (so the
checkpoint is skipped, counted, and retried next round) if the log is failing or does not
catch up within ``flush_timeout``. A crash therefore re-reads, from the last committed
checkpoint, the records whose changes might not be in the log, and the tracker emits
them again (gap ids are stable). What may be missing from the log is only intermediate
states coalesced away, never a gap's newest state. If the pending map is full
(``max_pending`` distinct gaps waiting: Kafka unreachable for long), new gaps' changes are
dropped and counted, checkpoints stop until the map drains, and then the current state of
every gap this instance still holds (trackers' open gaps and the local gap store) is
published again.

**Reading** (:class:`GapLogReader`): every instance reads partition 0 from the beginning
with its own consumer (no group) into the fleet view and ``/events``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from gapwatch.alerting.changes import (
    ChangeKind,
    GapChange,
    GapChangeDecodeError,
    changes_from_events,
    current_state_changes,
    decode_change,
    encode_change,
)
from gapwatch.alerting.eventhub import EventHub
from gapwatch.alerting.fleet import FleetStore
from gapwatch.alerting.retry import Backoff
from gapwatch.alerting.strings import StringTable
from gapwatch.core.events import Event
from gapwatch.core.model import Gap
from gapwatch.errors import GapwatchError

log = logging.getLogger(__name__)

GAP_LOG_PARTITION = 0  # one partition: one order, and event ids that are plain offsets
SEND_BATCH = 500
SEND_TIMEOUT = 30.0
EXPIRE_INTERVAL = 30.0


def gap_log_topic_configs(retention: float) -> dict[str, str]:
    """Topic configs of the gap log: compacted (newest change per gap) and time-bounded.

    ``compact,delete``: compaction keeps one record per gap; deletion drops segments older
    than the history retention, so the topic's size is bounded too.
    """
    retention_ms = int(retention * 1000)
    return {
        "cleanup.policy": "compact,delete",
        "retention.ms": str(retention_ms),
        "segment.ms": str(max(60_000, min(24 * 3600 * 1000, retention_ms // 4))),
        "min.cleanable.dirty.ratio": "0.1",
        "delete.retention.ms": str(60 * 60 * 1000),
    }


class GapLogBehindError(GapwatchError):
    """The gap log has not acknowledged every change a checkpoint would cover."""


class GapLogPublisher:
    """Publishes this instance's gap changes; never blocks the caller of :meth:`handle`."""

    name = "gap-log"

    def __init__(
        self,
        *,
        client_kwargs: Mapping[str, Any],
        topic: str,
        group: str,
        instance: str,
        max_pending: int,
        flush_timeout: float,
        local_gaps: Callable[[], Iterable[Gap]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._kwargs = dict(client_kwargs)
        self._topic = topic
        self._group = group
        self._instance = instance
        self._max_pending = max_pending
        self._flush_timeout = flush_timeout
        self._local_gaps = local_gaps
        self._clock = clock
        # key -> (sequence number, change); dict order is sequence order (re-inserted on
        # update), so the first entry is the oldest unacknowledged one.
        self._pending: dict[str, tuple[int, GapChange]] = {}
        self._inflight: dict[str, tuple[int, GapChange]] = {}
        self._seq = 0
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._needs_resync = False
        self.is_failing = False
        self._is_stopping = False
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        self.failures = 0
        self.dropped = 0
        self.resyncs = 0

    @property
    def pending(self) -> int:
        """Changes not yet acknowledged by the gap log."""
        return len(self._pending) + len(self._inflight)

    # --- the subscriber side (synchronous, on the consumer's path) ----------------------

    def handle(self, events: Sequence[Event], now: float) -> None:
        """Queue the gap changes among ``events``."""
        for change in changes_from_events(
            events, group=self._group, instance=self._instance, now=now
        ):
            self.enqueue(change)

    def enqueue(self, change: GapChange) -> None:
        """Queue one change, replacing a pending older change of the same key."""
        key = change.key
        if self._pending.pop(key, None) is None and len(self._pending) >= self._max_pending:
            self.dropped += 1
            self._needs_resync = True
            return
        self._seq += 1
        self._pending[key] = (self._seq, change)
        self._wake.set()

    def restate(self, gaps: Iterable[Gap], *, kind: ChangeKind | None = None) -> None:
        """Publish ``gaps`` as they are now, as this instance's (``kind`` by state unless
        given: :attr:`ChangeKind.OWNED` after an assignment)."""
        for change in current_state_changes(
            gaps, group=self._group, instance=self._instance, now=self._clock(), kind=kind
        ):
            self.enqueue(change)

    # --- the checkpoint barrier ---------------------------------------------------------

    async def flush(self) -> None:
        """Wait until every change queued so far is acknowledged, or raise.

        Raises :class:`GapLogBehindError` at once if the log is failing or changes were
        dropped, and ``TimeoutError`` after ``flush_timeout``: the checkpoint is then not
        committed (see the module docstring).
        """
        target = self._seq
        async with asyncio.timeout(self._flush_timeout):
            while True:
                if self._needs_resync:
                    raise GapLogBehindError("gap log changes were dropped; resync pending")
                if self.is_failing:
                    raise GapLogBehindError("the gap log is failing; see the log")
                oldest = self._oldest_unacked()
                if oldest is None or oldest > target:
                    return
                self._progress.clear()
                await self._progress.wait()

    def _oldest_unacked(self) -> int | None:
        seqs = [seq for seq, _ in self._inflight.values()]
        if self._pending:
            seqs.append(next(iter(self._pending.values()))[0])
        return min(seqs) if seqs else None

    # --- the sender ---------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the producer and start the sender task."""
        self._producer = AIOKafkaProducer(
            **self._kwargs, acks="all", enable_idempotence=True, linger_ms=5
        )
        await self._producer.start()
        self._task = asyncio.create_task(self._run(), name="gapwatch-gap-log")

    async def stop(self, *, drain_for: float = 10.0) -> None:
        """Send what is pending (for at most ``drain_for`` s), then close the producer."""
        self._is_stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                async with asyncio.timeout(drain_for):
                    await asyncio.shield(self._task)
            except TimeoutError:
                log.error("gap log: %d changes not sent at shutdown", self.pending)
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._producer is not None:
            await self._producer.stop()

    async def _run(self) -> None:
        backoff = Backoff(initial=0.2, maximum=10.0)
        while True:
            if not self._pending:
                if self._is_stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            failed = await self._send_batch()
            if failed:
                self.failures += 1
                self.is_failing = True
                # Older than anything pending: back at the front, unless superseded.
                retry = {k: v for k, v in failed.items() if k not in self._pending}
                self._pending = {**retry, **self._pending}
                self._progress.set()
                delay = backoff.next_delay()
                log.warning(
                    "gap log: %d changes not written; retrying in %.1fs", len(failed), delay
                )
                await asyncio.sleep(delay)
                continue
            self.is_failing = False
            backoff.reset()
            if self._needs_resync and len(self._pending) < self._max_pending // 2:
                self._needs_resync = False
                self.resyncs += 1
                log.warning("gap log: republishing every local gap after dropped changes")
                self.restate(self._local_gaps())
            self._progress.set()

    async def _send_batch(self) -> dict[str, tuple[int, GapChange]]:
        """Send up to :data:`SEND_BATCH` pending changes; returns the ones that failed."""
        producer = self._producer
        assert producer is not None
        keys = []
        for key in self._pending:
            keys.append(key)
            if len(keys) == SEND_BATCH:
                break
        self._inflight = {key: self._pending.pop(key) for key in keys}
        failed: dict[str, tuple[int, GapChange]] = {}
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                futures = [
                    await producer.send(
                        self._topic,
                        encode_change(change),
                        key=key.encode(),
                        partition=GAP_LOG_PARTITION,
                    )
                    for key, (_, change) in self._inflight.items()
                ]
                results = await asyncio.gather(*futures, return_exceptions=True)
            for (key, entry), result in zip(self._inflight.items(), results, strict=True):
                if isinstance(result, BaseException):
                    failed[key] = entry
                else:
                    self.published += 1
        except (KafkaError, TimeoutError) as exc:
            log.warning("gap log: send failed: %r", exc)
            failed = dict(self._inflight)
        finally:
            self._inflight = {}
        return failed


class GapLogReader:
    """Reads the whole gap log into the fleet view and ``/events``, then follows it."""

    def __init__(
        self,
        *,
        client_kwargs: Mapping[str, Any],
        topic: str,
        group: str,
        fleet: FleetStore,
        hub: EventHub,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._kwargs = dict(client_kwargs)
        self._tp = TopicPartition(topic, GAP_LOG_PARTITION)
        self._group = group
        self._fleet = fleet
        self._hub = hub
        self._clock = clock
        # Decoded changes share their repeated names (group, instance, topic, producer).
        self._strings = StringTable()
        self._consumer: AIOKafkaConsumer | None = None
        self._is_stopping = False
        self.read = 0
        self.malformed = 0

    async def start(self, *, catch_up_timeout: float = 30.0) -> None:
        """Connect, seek to the log's start and read up to its current end."""
        self._consumer = AIOKafkaConsumer(
            **self._kwargs,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )
        await self._consumer.start()
        consumer = self._consumer
        consumer.assign([self._tp])
        async with asyncio.timeout(catch_up_timeout):
            start = (await consumer.beginning_offsets([self._tp]))[self._tp]
            end = (await consumer.end_offsets([self._tp]))[self._tp]
            self._hub.start_at(start)
            consumer.seek(self._tp, start)
            while await consumer.position(self._tp) < end:
                batches = await consumer.getmany(self._tp, timeout_ms=500)
                self._apply(batches.get(self._tp, []))
        self._fleet.expire(self._clock())
        log.info("gap log: read %d changes, %d gaps in the fleet view", self.read, len(self._fleet))

    async def run(self) -> None:
        """Follow the log until :meth:`stop`."""
        consumer = self._consumer
        assert consumer is not None, "start() first"
        next_expiry = self._clock() + EXPIRE_INTERVAL
        while not self._is_stopping:
            try:
                batches = await consumer.getmany(self._tp, timeout_ms=500)
            except KafkaError:
                log.exception("gap log: read failed; retrying")
                await asyncio.sleep(1.0)
                continue
            self._apply(batches.get(self._tp, []))
            now = self._clock()
            if now >= next_expiry:
                next_expiry = now + EXPIRE_INTERVAL
                self._fleet.expire(now)

    async def stop(self) -> None:
        """Stop following and close the consumer."""
        self._is_stopping = True
        if self._consumer is not None:
            await self._consumer.stop()

    def _apply(self, records: Sequence[Any]) -> None:
        for record in records:
            if record.value is None:  # a tombstone: nothing to show
                continue
            try:
                change = decode_change(record.value, strings=self._strings)
            except GapChangeDecodeError as exc:
                self.malformed += 1
                log.warning("gap log: skipping record at offset %d: %s", record.offset, exc)
                continue
            self.read += 1
            if change.group != self._group:
                continue
            self._hub.publish(record.offset, self._fleet.settle(change))
