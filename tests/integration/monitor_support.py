"""Helpers for the monitor's integration tests: hand-stamped records and a monitor in-process.

Records are stamped with the wire format directly (``encode_stamp``) through a plain
aiokafka producer, so each test states exactly which sequences exist in the log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from gapwatch.core.wire import encode_stamp
from gapwatch.kafka.settings import KafkaSettings
from gapwatch.monitor.app import RunningMonitor
from gapwatch.monitor.config import (
    CheckpointSettings,
    HttpSettings,
    MonitorConfig,
    ReportSettings,
    TrackerSettings,
    WatchSettings,
)


async def send_stamped(
    bootstrap: str,
    topic: str,
    partition: int,
    seqs: Iterable[int],
    *,
    producer: str = "p1",
    epoch: int = 1,
) -> None:
    """Send one record per sequence, in the given order, and wait for every ack."""
    client = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await client.start()
    try:
        futures = [
            await client.send(
                topic, b"x" * 100, partition=partition, headers=encode_stamp(producer, epoch, seq)
            )
            for seq in seqs
        ]
        await asyncio.gather(*futures)
    finally:
        await client.stop()


async def send_raw(
    bootstrap: str, topic: str, partition: int, headers: list[tuple[str, bytes]]
) -> None:
    """Send one record with exactly ``headers`` (unstamped or malformed records)."""
    client = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await client.start()
    try:
        await client.send_and_wait(topic, b"raw", partition=partition, headers=headers)
    finally:
        await client.stop()


def monitor_config(
    bootstrap: str, topics: list[str], group_id: str, **tracker: Any
) -> MonitorConfig:
    """A test config: fast grace and checkpoints, reading from the start, any free port."""
    return MonitorConfig(
        kafka=KafkaSettings(bootstrap_servers=tuple(bootstrap.split(",")), fetch_max_wait_ms=100),
        watch=WatchSettings(topics=tuple(topics), group_id=group_id, start_from="earliest"),
        tracker=TrackerSettings(grace_period=tracker.get("grace_period", 1.0)),
        checkpoints=CheckpointSettings(
            topic=f"__gapwatch_checkpoints_{group_id}", interval=tracker.get("interval", 0.5)
        ),
        reports=ReportSettings(enabled=tracker.get("reports", False)),
        http=HttpSettings(port=0),
    ).validate()


async def start_monitor(config: MonitorConfig) -> RunningMonitor:
    """A started monitor with its own metrics registry."""
    monitor = RunningMonitor(config, registry=CollectorRegistry())
    await monitor.start()
    return monitor


def with_group(config: MonitorConfig, group_id: str) -> MonitorConfig:
    """The same config for another consumer group."""
    return dataclasses.replace(config, watch=dataclasses.replace(config.watch, group_id=group_id))


async def get_json(monitor: RunningMonitor, path: str, **params: Any) -> Any:
    """GET a JSON document from the monitor's real HTTP server."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{monitor.http_port}") as http:
        response = await http.get(path, params=params)
        response.raise_for_status()
        return response.json()


async def wait_until(check: Callable[[], Any], *, within: float = 30.0) -> Any:
    """Poll the async ``check`` until it returns something truthy; fail after ``within`` s."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"condition not met within {within}s; last value: {last!r}")


async def wait_for_position(monitor: RunningMonitor, position: int) -> None:
    """Wait until the monitor's (first) partition has been read up to ``position``."""

    async def has_read() -> bool:
        partitions = (await get_json(monitor, "/streams"))["partitions"]
        return bool(partitions) and partitions[0]["position"] == position

    await wait_until(has_read)


def gap_ranges(gaps: list[dict[str, Any]], state: str) -> set[tuple[int, int, int]]:
    """(partition, first_seq, last_seq) of the gaps in ``state``."""
    return {(g["partition"], g["first_seq"], g["last_seq"]) for g in gaps if g["state"] == state}


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text output (0.0 if absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
