"""The load generator: StampedProducers sending at a rate, with honest fault injection.

:func:`run_loadgen` drives one or more :class:`~gapwatch.producer.StampedProducer` from a
single task. Every record is stamped with :meth:`StampedProducer.stamp` and sent with
:meth:`StampedProducer.send_stamped`, so faults act on real stamped records (see
:mod:`gapwatch.producer.faults`), and the returned truth says exactly which sequences
were dropped, duplicated, reordered or failed, and which producers crashed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError
from prometheus_client import CollectorRegistry

from gapwatch.core.model import StreamKey
from gapwatch.kafka.startup_errors import explained_start, name_kafka_error
from gapwatch.kafka.topics import TopicSetupError, explain_code
from gapwatch.producer.config import (
    DEFAULT_REPORT_TOPIC,
    ProducerConfigError,
    ReportConfig,
    acks_label,
    aiokafka_acks,
)
from gapwatch.producer.faults import Fault, FaultDecider, FaultPlan, HoldBack, InjectionLedger
from gapwatch.producer.stamped import StampedProducer, StampedRecord

log = logging.getLogger(__name__)
_Lane = tuple[str, str, int]  # producer id, topic, partition
_TOPIC_ALREADY_EXISTS = TopicAlreadyExistsError.errno


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadgenConfig:
    """What to send, how fast, and which faults to inject.

    ``rate`` is records per second over all producers (0: as fast as possible); the run
    ends after ``count`` records or ``duration_s`` seconds, whichever comes first.
    ``partitions`` creates missing topics with that many partitions (``None``: the topics
    must exist). ``keys`` is the number of distinct keys (0: unkeyed records).
    ``crash_producers`` is how many of the producers end as if crashed.
    """

    bootstrap_servers: str
    topics: tuple[str, ...] = ("gapwatch-load",)
    partitions: int | None = None
    replication_factor: int = 1
    rate: float = 1000.0
    count: int | None = None
    duration_s: float | None = 10.0
    keys: int = 0
    value_size: int = 100
    producers: int = 1
    producer_prefix: str = field(default_factory=lambda: f"loadgen-{os.getpid()}")
    acks: int | str = "all"
    idempotent: bool = False
    linger_ms: int = 5
    faults: FaultPlan = field(default_factory=FaultPlan)
    crash_producers: int = 0
    report_topic: str = DEFAULT_REPORT_TOPIC
    report_interval_s: float = 1.0
    seed: int = 0

    def validate(self) -> LoadgenConfig:
        """Return ``self`` if valid, else raise :class:`ProducerConfigError` naming the field."""
        if not self.topics or any(not t for t in self.topics):
            raise ProducerConfigError("topics", "at least one non-empty topic name")
        if self.partitions is not None and self.partitions < 1:
            raise ProducerConfigError("partitions", "must be at least 1")
        if self.replication_factor < 1:
            raise ProducerConfigError("replication_factor", "must be at least 1")
        if not (math.isfinite(self.rate) and self.rate >= 0):
            raise ProducerConfigError("rate", "must be >= 0 records per second (0: unlimited)")
        if self.count is None and self.duration_s is None:
            raise ProducerConfigError("count", "give a count, a duration or both")
        if self.count is not None and self.count < 0:
            raise ProducerConfigError("count", "must be >= 0")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ProducerConfigError("duration_s", "must be positive")
        if self.keys < 0:
            raise ProducerConfigError("keys", "must be >= 0")
        if self.value_size < 0:
            raise ProducerConfigError("value_size", "must be >= 0")
        if self.producers < 1:
            raise ProducerConfigError("producers", "must be at least 1")
        if not 0 <= self.crash_producers <= self.producers:
            raise ProducerConfigError("crash_producers", "must be between 0 and producers")
        if acks_label(self.acks) != "all" and self.idempotent:
            raise ProducerConfigError("acks", "an idempotent producer needs acks=all")
        self.faults.validate()
        ReportConfig(topic=self.report_topic, interval_s=self.report_interval_s).validate()
        return self


async def ensure_topics(config: LoadgenConfig) -> None:
    """Create the topics (when ``partitions`` is set; existing topics are left alone), or
    check that they exist: sending to a missing topic would wait for its metadata and then
    fail without naming it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=config.bootstrap_servers)
    try:
        async with explained_start({"bootstrap_servers": config.bootstrap_servers}):
            await admin.start()
        if config.partitions is None:
            described = await admin.describe_topics(list(config.topics))
        else:
            response = await admin.create_topics(
                [NewTopic(t, config.partitions, config.replication_factor) for t in config.topics]
            )
    finally:
        await admin.close()
    if config.partitions is None:
        for entry in described:
            if entry["error_code"] == UnknownTopicOrPartitionError.errno:
                raise TopicSetupError(
                    f"topic {entry['topic']!r} does not exist "
                    f"({name_kafka_error(entry['error_code'])}): create it, or pass "
                    "--partitions to have it created"
                )
            if entry["error_code"]:
                raise TopicSetupError(
                    f"cannot describe topic {entry['topic']!r}: "
                    f"{explain_code(entry['error_code'], None)}"
                )
        return
    for entry in response.topic_errors:
        if entry[1] not in (0, _TOPIC_ALREADY_EXISTS):
            raise TopicSetupError(
                f"cannot create topic {entry[0]!r}: {explain_code(entry[1], None)}"
            )


class _Pacer:
    """Sleeps so that record ``i`` is sent no earlier than ``start + i / rate``."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._start = time.monotonic()

    async def wait(self, index: int) -> None:
        if self._interval:
            delay = self._start + index * self._interval - time.monotonic()
            # Sleep only when at least a millisecond ahead: fine-grained sleeps cost more
            # than they smooth.
            if delay > 0.001:
                await asyncio.sleep(delay)
            elif index % 256 == 0:
                await asyncio.sleep(0)  # let delivery callbacks run when behind
        elif index % 256 == 0:
            await asyncio.sleep(0)


async def run_loadgen(
    config: LoadgenConfig, *, registry: CollectorRegistry | None = None
) -> dict[str, Any]:
    """Run the load and return the truth of what was injected (see ``docs/loadgen.md``)."""
    config.validate()
    await ensure_topics(config)
    rng = random.Random(config.seed)
    decider = FaultDecider(config.faults)
    ledger = InjectionLedger()
    held: HoldBack[_Lane, tuple[StampedProducer, StampedRecord]] = HoldBack(
        config.faults.reorder_depth
    )
    payload = bytes(rng.getrandbits(8) for _ in range(config.value_size)) or b"x"
    producers = [
        StampedProducer(
            bootstrap_servers=config.bootstrap_servers,
            producer_id=f"{config.producer_prefix}-{i}",
            acks=aiokafka_acks(config.acks),
            enable_idempotence=config.idempotent,
            linger_ms=config.linger_ms,
            reports=ReportConfig(topic=config.report_topic, interval_s=config.report_interval_s),
            registry=registry,
        )
        for i in range(config.producers)
    ]
    crashing = set(range(config.crash_producers))
    started: list[StampedProducer] = []
    sent_count = 0
    try:
        for producer in producers:
            await producer.start()
            started.append(producer)
        deadline = None if config.duration_s is None else time.monotonic() + config.duration_s
        pacer = _Pacer(config.rate)
        index = 0
        while config.count is None or index < config.count:
            if deadline is not None and time.monotonic() >= deadline:
                break
            await pacer.wait(index)
            producer = producers[index % len(producers)]
            topic = config.topics[(index // len(producers)) % len(config.topics)]
            key = f"key-{rng.randrange(config.keys)}".encode() if config.keys else None
            # CreateTime fixed when the record is made, as a Kafka client does when it
            # builds a batch: a duplicate's second copy and a held-back (reordered)
            # record keep it, exactly like a retried batch. Letting each send take the
            # clock gave the copy of a stream's record 0 a newer timestamp now and then
            # (when the millisecond ticked between the two sends), which is what a
            # restarted producer looks like (tracker rule R8): a false sequence reset.
            created_ms = int(time.time() * 1000)
            record = await producer.stamp(topic, payload, key, timestamp_ms=created_ms)
            stream = StreamKey(record.topic, record.partition, producer.producer_id, producer.epoch)
            ledger.stamped(stream, record.seq)
            fault = decider.decide()
            if fault is Fault.DROP:
                ledger.dropped(stream, record.seq)
            elif fault is Fault.REORDER:
                held.hold(
                    (producer.producer_id, record.topic, record.partition), (producer, record)
                )
            else:
                copies = 2 if fault is Fault.DUPLICATE else 1
                await _send(producer, record, ledger, stream, copies)
                sent_count += copies
                lane = (producer.producer_id, record.topic, record.partition)
                for late_producer, late in held.sent(lane):
                    await _send(late_producer, late, ledger, _key(late_producer, late), 1)
                    sent_count += 1
            index += 1
        # End of run: clean producers send what they still hold; a crashing one never will.
        for i, producer in enumerate(producers):
            for lane_producer, late in _drain_producer(held, producer):
                if i in crashing:
                    ledger.dropped(_key(lane_producer, late), late.seq)
                else:
                    await _send(lane_producer, late, ledger, _key(lane_producer, late), 1)
                    sent_count += 1
        for producer in producers:
            await producer.flush()
    finally:
        for i, producer in enumerate(producers):
            crashed = i in crashing
            try:
                await producer.stop(final_report=not crashed)
            except Exception:
                log.exception("loadgen: stopping producer %s failed", producer.producer_id)
            if crashed and producer in started:
                ledger.crashed(producer.producer_id, producer.epoch)
    for producer in producers:
        for report in producer.reports():
            ledger.failed(report.key, report.failed)
    truth = ledger.to_json()
    truth["run"] = {
        "records_attempted": sum(
            s["last_seq"] + 1 for s in truth["streams"] if s["last_seq"] is not None
        ),
        "records_sent": sent_count,
        "acks": producers[0].acks,
        "idempotent": config.idempotent,
        "report_topic": config.report_topic,
        "producers": [{"producer": p.producer_id, "epoch": p.epoch} for p in producers],
    }
    return truth


def _key(producer: StampedProducer, record: StampedRecord) -> StreamKey:
    return StreamKey(record.topic, record.partition, producer.producer_id, producer.epoch)


def _drain_producer(
    held: HoldBack[_Lane, tuple[StampedProducer, StampedRecord]], producer: StampedProducer
) -> list[tuple[StampedProducer, StampedRecord]]:
    items = []
    for lane in [lane for lane in held.lanes() if lane[0] == producer.producer_id]:
        items.extend(held.drain(lane))
    return items


async def _send(
    producer: StampedProducer,
    record: StampedRecord,
    ledger: InjectionLedger,
    stream: StreamKey,
    copies: int,
) -> None:
    for _ in range(copies):
        try:
            await producer.send_stamped(record)
        except Exception as exc:
            # Booked as failed by the producer; the truth's "failed" comes from its reports.
            log.debug("loadgen: send of %s seq %d failed: %r", stream, record.seq, exc)
    ledger.sent(stream, record.seq, copies=copies)
