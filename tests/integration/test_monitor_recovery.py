"""The monitor survives SIGKILL, hands partitions over, reads reports and sees retention."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from monitor_support import (
    gap_ranges,
    get_json,
    metric_value,
    monitor_config,
    send_stamped,
    start_monitor,
    wait_for_position,
    wait_until,
)

from gapwatch.core.model import ProducerReport
from gapwatch.core.report_codec import encode_report, encode_report_key
from gapwatch.monitor.config import MonitorConfig
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.kafka


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def spawn_monitor(config: MonitorConfig, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``gapwatch monitor`` as a real process, configured through flags."""
    argv = [
        sys.executable,
        "-m",
        "gapwatch",
        "monitor",
        "--bootstrap-servers",
        ",".join(config.kafka.bootstrap_servers),
        "--group-id",
        config.watch.group_id,
        "--start-from",
        "earliest",
        "--grace-period",
        str(config.tracker.grace_period),
        "--checkpoint-topic",
        config.checkpoints.topic,
        "--checkpoint-interval",
        str(config.checkpoints.interval),
        "--no-read-reports",
        "--http-port",
        str(port),
        "--fetch-max-wait-ms",
        "100",
    ]
    for topic in config.watch.topics:
        argv += ["--topic", topic]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAPWATCH_")}
    # The child keeps its own copy of the descriptor; the parent's closes at once.
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)


async def position_of(port: int, partition: int) -> int | None:
    try:
        async with httpx.AsyncClient() as http:
            body = (await http.get(f"http://127.0.0.1:{port}/streams")).json()
    except httpx.HTTPError:
        return None
    for item in body["partitions"]:
        if item["partition"] == partition:
            position: int | None = item["position"]
            return position
    return None


async def test_sigkill_restart_finds_gap_made_while_down(
    kafka: KafkaCluster, make_topic: MakeTopic, tmp_path: Path
) -> None:
    """SIGKILL mid-stream, a gap injected while down: found on restart, nothing false."""
    topic = await make_topic(partitions=1)
    bootstrap = kafka.bootstrap_servers
    config = monitor_config(bootstrap, [topic], f"g-{topic}")
    await send_stamped(bootstrap, topic, 0, range(200))
    port = free_port()
    process = spawn_monitor(config, port, tmp_path / "monitor.log")
    try:

        async def has_read_all() -> bool:
            return await position_of(port, 0) == 200

        await wait_until(has_read_all, within=60.0)
        # More records after the last checkpoint, then kill without any chance to save.
        await send_stamped(bootstrap, topic, 0, range(200, 230))
        await asyncio.sleep(0.3)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    await send_stamped(bootstrap, topic, 0, [s for s in range(230, 260) if s not in (240, 241)])

    monitor = await start_monitor(config)
    try:

        async def confirmed() -> list[dict[str, object]] | None:
            gaps = (await get_json(monitor, "/gaps"))["gaps"]
            return gaps if gap_ranges(gaps, "confirmed") else None

        gaps = await wait_until(confirmed)
        await asyncio.sleep(1.5)  # let anything false surface too
        gaps = (await get_json(monitor, "/gaps"))["gaps"]
        assert gap_ranges(gaps, "confirmed") == {(0, 240, 241)}
        assert len(gaps) == 1
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{monitor.http_port}/metrics")).text
        assert metric_value(text, "gapwatch_duplicate_records_total", topic=topic) == 0
        assert metric_value(text, "gapwatch_records_total", topic=topic) == 258
    finally:
        await monitor.stop()


async def test_survivor_takes_over_a_killed_instance(
    kafka: KafkaCluster, make_topic: MakeTopic, tmp_path: Path
) -> None:
    """Two instances in one group; one is killed; the other finds every gap, none false."""
    topic = await make_topic(partitions=4)
    bootstrap = kafka.bootstrap_servers
    config = monitor_config(bootstrap, [topic], f"g-{topic}")
    for partition in range(4):
        await send_stamped(bootstrap, topic, partition, range(20))
    port = free_port()
    doomed = spawn_monitor(config, port, tmp_path / "doomed.log")
    survivor = await start_monitor(config)
    try:

        async def split_and_read() -> bool:
            mine = (await get_json(survivor, "/streams"))["partitions"]
            theirs = [p for p in range(4) if await position_of(port, p) == 20]
            return len(mine) == 2 and len(theirs) == 2 and all(p["position"] == 20 for p in mine)

        await wait_until(split_and_read, within=60.0)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
        for partition in range(4):
            await send_stamped(bootstrap, topic, partition, [20, 21, 23, 24])

        async def all_confirmed() -> list[dict[str, object]] | None:
            gaps = (await get_json(survivor, "/gaps", limit=100))["gaps"]
            return gaps if len(gap_ranges(gaps, "confirmed")) == 4 else None

        # The group notices the dead member after its session timeout (10 s).
        gaps = await wait_until(all_confirmed, within=60.0)
        assert gap_ranges(gaps, "confirmed") == {(p, 22, 22) for p in range(4)}
        assert len(gaps) == 4
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{survivor.http_port}/metrics")).text
        assert metric_value(text, "gapwatch_partitions_assigned") == 4
        assert metric_value(text, "gapwatch_duplicate_records_total", topic=topic) == 0
    finally:
        if doomed.poll() is None:
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(timeout=30)
        await survivor.stop()


async def test_tail_loss_from_producer_report(kafka: KafkaCluster, make_topic: MakeTopic) -> None:
    """Acknowledged records that never arrive, with no final report, are a confirmed tail gap."""
    topic = await make_topic(partitions=1)
    reports_topic = await make_topic(partitions=1)
    bootstrap = kafka.bootstrap_servers
    await send_stamped(bootstrap, topic, 0, range(10), producer="app", epoch=7)
    report = ProducerReport("app", 7, topic, 0, highest_assigned=14, highest_acked=14)
    client = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await client.start()
    try:
        await client.send_and_wait(
            reports_topic, encode_report(report), key=encode_report_key(report)
        )
    finally:
        await client.stop()
    base = monitor_config(bootstrap, [topic], f"g-{topic}", reports=True)
    config = MonitorConfig(
        kafka=base.kafka,
        watch=base.watch,
        tracker=base.tracker,
        checkpoints=base.checkpoints,
        reports=type(base.reports)(topic=reports_topic, enabled=True),
        http=base.http,
    )
    monitor = await start_monitor(config)
    try:

        async def confirmed() -> list[dict[str, object]] | None:
            gaps = (await get_json(monitor, "/gaps"))["gaps"]
            return gaps if gap_ranges(gaps, "confirmed") else None

        gaps = await wait_until(confirmed)
        assert gap_ranges(gaps, "confirmed") == {(0, 10, 14)}
        assert gaps[0]["cause"] == "tail"
    finally:
        await monitor.stop()


async def test_retention_deleted_records_are_skipped_not_lost(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    """Records deleted before the monitor read them are reported as skipped, not as loss."""
    topic = await make_topic(partitions=1)
    bootstrap = kafka.bootstrap_servers
    config = monitor_config(bootstrap, [topic], f"g-{topic}")
    await send_stamped(bootstrap, topic, 0, range(30))
    first = await start_monitor(config)
    try:
        await wait_for_position(first, 30)
    finally:
        await first.stop()
    await send_stamped(bootstrap, topic, 0, range(30, 100))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(60)})
    finally:
        await admin.close()

    second = await start_monitor(config)
    try:

        async def skipped() -> list[dict[str, object]] | None:
            body = await get_json(second, "/skipped")
            return body["skipped"] or None

        ranges = await wait_until(skipped)
        assert [(s["first_offset"], s["last_offset"], s["count"]) for s in ranges] == [(30, 59, 30)]
        await asyncio.sleep(2.0)
        gaps = (await get_json(second, "/gaps"))["gaps"]
        assert gaps == []
    finally:
        await second.stop()
