"""Helpers for the mirror tests: stamped records with chosen timestamps, a monitor that
knows its topics are copies, and reading its mirror fields and metrics."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Iterable
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from monitor_support import get_json, metric_value, monitor_config, wait_until

from gapwatch.core.replication import ReplicationPolicy
from gapwatch.core.wire import encode_stamp, parse_stamp
from gapwatch.monitor.app import RunningMonitor
from gapwatch.monitor.config import MirrorSettings, MirrorSource, MonitorConfig


async def send_timed(
    bootstrap: str,
    topic: str,
    partition: int,
    records: Iterable[tuple[int, int]],
    *,
    producer: str = "p1",
    epoch: int = 1,
) -> None:
    """Send one record per (sequence, timestamp ms), in order, and wait for every ack."""
    client = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await client.start()
    try:
        futures = [
            await client.send(
                topic,
                b"x" * 100,
                partition=partition,
                timestamp_ms=ts,
                headers=encode_stamp(producer, epoch, seq),
            )
            for seq, ts in records
        ]
        await asyncio.gather(*futures)
    finally:
        await client.stop()


def mirror_config(
    target: str,
    topics: list[str],
    group_id: str,
    *,
    sources: dict[str, str],
    policy: ReplicationPolicy = "default",
    grace_period: float = 1.0,
) -> MonitorConfig:
    """The test monitor config, with ``sources`` (alias -> bootstrap) as mirror sources."""
    base = monitor_config(target, topics, group_id, grace_period=grace_period)
    mirror = MirrorSettings(
        sources=tuple(
            MirrorSource(alias, tuple(bootstrap.split(","))) for alias, bootstrap in sources.items()
        ),
        replication_policy=policy,
        lag_interval=1.0,
        lookup_retries=2,
    )
    return dataclasses.replace(base, mirror=mirror).validate()


async def metrics_text(monitor: RunningMonitor) -> str:
    """The monitor's /metrics page."""
    async with httpx.AsyncClient() as http:
        return (await http.get(f"http://127.0.0.1:{monitor.http_port}/metrics")).text


async def mirror_metric(monitor: RunningMonitor, name: str, **labels: str) -> float:
    """One gapwatch_mirror_* sample."""
    return metric_value(await metrics_text(monitor), name, **labels)


async def wait_for_origins(
    monitor: RunningMonitor, topic: str, count: int, *, within: float = 60.0
) -> list[dict[str, Any]]:
    """The confirmed gaps of ``topic`` once ``count`` of them have a decided origin."""

    async def decided() -> list[dict[str, Any]] | None:
        gaps = (await get_json(monitor, "/gaps", topic=topic, limit=1000))["gaps"]
        done = [g for g in gaps if g["origin"] not in (None, "pending")]
        return done if len(done) >= count else None

    result: list[dict[str, Any]] = await wait_until(decided, within=within)
    return result


def origins_by_range(gaps: list[dict[str, Any]]) -> dict[tuple[int, int, int], str]:
    """(partition, first_seq, last_seq) -> origin."""
    return {(g["partition"], g["first_seq"], g["last_seq"]): g["origin"] for g in gaps}


async def read_stamp_counts(
    bootstrap: str, topic: str, partition: int, *, producer: str | None = None
) -> Counter[tuple[str, int, int]]:
    """How often each stamp (producer, epoch, seq) occurs in a partition, read to its end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    counts: Counter[tuple[str, int, int]] = Counter()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            for record in batch.get(tp, []):
                stamp = parse_stamp(record.headers)
                if stamp is not None and (producer is None or stamp.producer == producer):
                    counts[(stamp.producer, stamp.epoch, stamp.seq)] += 1
    finally:
        await consumer.stop()
    return counts
