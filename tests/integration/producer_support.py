"""Reading a topic back in full, independently of gapwatch, for producer tests."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from gapwatch.core.model import ProducerReport
from gapwatch.core.report_codec import decode_report
from gapwatch.core.wire import parse_stamp
from gapwatch.testing.kafka import topic_partitions


@dataclass(frozen=True, slots=True)
class ReadRecord:
    """One record as a plain consumer saw it."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    producer: str
    epoch: int
    seq: int


async def read_all(
    bootstrap_servers: str, topic: str, *, timeout_s: float = 30.0
) -> list[tuple[int, int, bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]]:
    """Every record of ``topic`` from the start to its current end, in offset order."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, request_timeout_ms=10_000
    )
    await consumer.start()
    try:
        partitions = await topic_partitions(bootstrap_servers, topic, timeout_s=timeout_s)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[tuple[int, int, bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]] = []
        deadline = time.monotonic() + timeout_s
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, "timed out reading the topic back"
            batches = await consumer.getmany(*tps, timeout_ms=1000)
            for tp, records in batches.items():
                out.extend(
                    (tp.partition, r.offset, r.key, r.value, tuple(r.headers))
                    for r in records
                    if r.offset < ends[tp]
                )
        out.sort(key=lambda r: (r[0], r[1]))
        return out
    finally:
        await consumer.stop()


async def read_stamped(
    bootstrap_servers: str, topic: str, *, timeout_s: float = 30.0
) -> list[ReadRecord]:
    """Every record of ``topic``, each with its parsed stamp (all must be stamped)."""
    records = []
    for partition, offset, key, value, headers in await read_all(
        bootstrap_servers, topic, timeout_s=timeout_s
    ):
        stamp = parse_stamp(headers)
        assert stamp is not None, f"unstamped record at {partition}/{offset}"
        records.append(
            ReadRecord(
                partition, offset, key, value, headers, stamp.producer, stamp.epoch, stamp.seq
            )
        )
    return records


def seqs_by_partition(records: list[ReadRecord]) -> dict[int, list[int]]:
    """Sequences per partition in log order."""
    result: defaultdict[int, list[int]] = defaultdict(list)
    for record in records:
        result[record.partition].append(record.seq)
    return dict(result)


async def latest_reports(
    bootstrap_servers: str, report_topic: str, *, timeout_s: float = 30.0
) -> dict[tuple[str, int, str, int], ProducerReport]:
    """The last report of each stream in the control topic."""
    latest: dict[tuple[str, int, str, int], ProducerReport] = {}
    for _, _, _, value, _ in await read_all(bootstrap_servers, report_topic, timeout_s=timeout_s):
        report = decode_report(value)
        latest[(report.topic, report.partition, report.producer, report.epoch)] = report
    return latest
