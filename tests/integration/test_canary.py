"""The canary on the 3-node test bed, read by a real monitor and scraped by a real
Prometheus with the shipped rules.

- healthy: every broker's availability is 1 and the canary topic shows no loss;
- a paused broker shows unavailable within 15 s and GapwatchCanaryBrokerUnavailable fires;
  after it resumes, the canary restores its preferred leadership, availability returns and
  no gap is left;
- a rolling restart (each node in turn) leaves no false canary loss.

Each test uses its own canary topic, so the session's cluster keeps no shared state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from monitor_support import get_json, metric_value, monitor_config, start_monitor, wait_until
from ops_support import RULES, OpsStack

from gapwatch.kafka.canary.settings import CanarySettings
from gapwatch.monitor.app import RunningMonitor
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.prometheus import run_prometheus

pytestmark = pytest.mark.chaos


def canary_settings(topic: str) -> CanarySettings:
    """The defaults, on a topic of this test; a broker counts as gone only after 5 minutes,
    so no fault here moves a partition."""
    return CanarySettings(enabled=True, topic=f"__gapwatch_canary_{topic}", departure=300.0)


@asynccontextmanager
async def canary_monitor(kafka3: KafkaCluster, topic: str) -> AsyncIterator[RunningMonitor]:
    """A started monitor with the canary on, watching only the canary topic."""
    config = monitor_config(kafka3.bootstrap_servers, [topic], f"g-{topic}", grace_period=1.0)
    watch = dataclasses.replace(config.watch, topics=())
    config = dataclasses.replace(config, watch=watch, canary=canary_settings(topic)).validate()
    monitor = await start_monitor(config)
    try:
        yield monitor
    finally:
        await monitor.stop()


async def scrape(monitor: RunningMonitor) -> str:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{monitor.http_port}") as http:
        response = await http.get("/metrics")
        response.raise_for_status()
        return response.text


async def availability(monitor: RunningMonitor) -> dict[int, float]:
    """Broker -> gapwatch_canary_broker_available as /metrics shows it."""
    text = await scrape(monitor)
    return {
        broker: metric_value(text, "gapwatch_canary_broker_available", broker=str(broker))
        for broker in (1, 2, 3)
    }


async def all_available(monitor: RunningMonitor) -> bool:
    return set((await availability(monitor)).values()) == {1.0}


async def canary_gaps(monitor: RunningMonitor) -> list[dict[str, Any]]:
    """Every gap on the canary topic, in any state."""
    topic = monitor.config.canary.topic
    gaps: list[dict[str, Any]] = (await get_json(monitor, "/gaps", topic=topic))["gaps"]
    return gaps


async def assert_no_canary_loss(monitor: RunningMonitor) -> None:
    """The monitor has read every canary record acknowledged so far, and found no gap: each
    partition's canary stream reaches the last acknowledged sequence with nothing missing."""
    canary = monitor.canary
    assert canary is not None
    target = {p: seq - 1 for p, seq in canary.next_sequences.items()}
    assert target
    assert all(seq >= 0 for seq in target.values())

    async def read_to_target() -> dict[int, dict[str, Any]] | None:
        streams: dict[int, dict[str, Any]] = {}
        for partition in (await get_json(monitor, "/streams"))["partitions"]:
            if partition["topic"] != canary.settings.topic:
                continue
            for stream in partition["streams"]:
                if (stream["producer"], stream["epoch"]) == (canary.producer_id, canary.epoch):
                    streams[partition["partition"]] = stream
        done = all(p in streams and streams[p]["high_seq"] >= seq for p, seq in target.items())
        return streams if done else None

    await wait_until(read_to_target, within=30.0)
    await asyncio.sleep(2.0)  # past the grace period: a gap would be confirmed by now
    streams = await read_to_target()
    assert streams is not None
    assert {p: (s["missing"], s["open_gaps"]) for p, s in streams.items()} == {
        p: (0, []) for p in streams
    }
    assert await canary_gaps(monitor) == []
    text = await scrape(monitor)
    missing = [
        line
        for line in text.splitlines()
        if line.startswith("gapwatch_missing_records_total{")
        and canary.settings.topic in line
        and float(line.rsplit(" ", 1)[1]) != 0.0
    ]
    assert missing == []


async def min_insync_replicas(kafka3: KafkaCluster, topic: str) -> str | None:
    """The topic's ``min.insync.replicas`` as DescribeConfigs reports it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka3.bootstrap_servers)
    await admin.start()
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, {"min.insync.replicas": None})
        (response,) = await admin.describe_configs([resource])
    finally:
        await admin.close()
    for error_code, _message, _type, _name, entries, *_ in response.resources:
        assert error_code == 0
        for entry in entries:
            if entry[0] == "min.insync.replicas":
                value: str | None = entry[1]
                return value
    return None


def owned_by(monitor: RunningMonitor, broker: int) -> int:
    canary = monitor.canary
    assert canary is not None
    (partition,) = [p for p, b in canary.owners.items() if b == broker]
    return partition


class TestCanaryOnThreeBrokers:
    async def test_paused_broker_is_unavailable_fires_and_recovers_without_loss(
        self, kafka3: KafkaCluster, topic_name: str, tmp_path: Path
    ) -> None:
        """Healthy: all 1. Paused: 0 within 15 s and the alert fires on Prometheus.
        Resumed: back to 1 (preferred leader restored), no gap on the canary topic."""
        servers = ExitStack()
        async with canary_monitor(kafka3, topic_name) as monitor:
            try:
                await self._pause_and_resume(monitor, kafka3, servers, tmp_path)
            finally:
                await asyncio.to_thread(servers.close)

    async def _pause_and_resume(
        self, monitor: RunningMonitor, kafka3: KafkaCluster, servers: ExitStack, tmp_path: Path
    ) -> None:
        canary = monitor.canary
        assert canary is not None
        await wait_until(lambda: all_available(monitor), within=60.0)
        assert sorted(canary.owners.values()) == [1, 2, 3]
        assert all(canary.leaders[p] == b for p, b in canary.owners.items())
        prometheus = await asyncio.to_thread(
            servers.enter_context,
            run_prometheus(
                workdir=tmp_path,
                scrape_targets=[f"127.0.0.1:{monitor.http_port}"],
                rule_files=[RULES],
                interval="1s",
            ),
        )
        ops = OpsStack(monitor=monitor, prometheus=prometheus)

        async def scraped_up() -> bool:
            series = await ops.query("gapwatch_canary_broker_available == 1")
            return len(series) == 3

        await wait_until(scraped_up, within=60.0)
        await assert_no_canary_loss(monitor)

        victim = 2
        victim_partition = owned_by(monitor, victim)
        paused_at = time.monotonic()
        assert kafka3.pause_node(victim)
        try:

            async def victim_down() -> bool:
                return (await availability(monitor))[victim] == 0.0

            await wait_until(victim_down, within=15.0)
            assert time.monotonic() - paused_at <= 15.0

            # acks=all writes through the others wait for the paused follower until the
            # cluster fences it and shrinks the ISR; then only the victim stays down.
            async def only_victim_down() -> bool:
                return await availability(monitor) == {1: 1.0, 2: 0.0, 3: 1.0}

            await wait_until(only_victim_down, within=30.0)

            async def alert_fires() -> bool:
                alerts = await asyncio.to_thread(prometheus.alerts)
                return any(
                    a["labels"]["alertname"] == "GapwatchCanaryBrokerUnavailable"
                    and a["labels"]["broker"] == str(victim)
                    and a["state"] == "firing"
                    for a in alerts
                )

            await wait_until(alert_fires, within=90.0)
        finally:
            assert kafka3.resume_node(victim)

        await wait_until(lambda: all_available(monitor), within=90.0)
        # The outage was real (writes through the victim failed and were retried) and
        # left no gap below.
        assert canary.stats.by_broker[victim].failures >= 1
        assert canary.leaders[victim_partition] == victim
        assert canary.stats.elections >= 1
        await assert_no_canary_loss(monitor)

    async def test_rolling_restart_leaves_no_false_canary_loss(
        self, kafka3: KafkaCluster, topic_name: str
    ) -> None:
        """Each broker restarted in turn (SIGTERM, start, wait until it is back and leads
        its partition again): the canary stream has no gap at the end."""
        async with canary_monitor(kafka3, topic_name) as monitor:
            canary = monitor.canary
            assert canary is not None
            await wait_until(lambda: all_available(monitor), within=60.0)
            before = dict(canary.next_sequences)
            for node in kafka3.node_ids:
                await asyncio.to_thread(kafka3.restart_node, node)
                await wait_until(lambda: all_available(monitor), within=90.0)
            after = canary.next_sequences
            assert all(after[p] > before[p] for p in before)
            await assert_no_canary_loss(monitor)

    async def test_a_misplaced_canary_topic_is_placed_again(
        self, kafka3: KafkaCluster, topic_name: str
    ) -> None:
        """An existing canary topic with two partitions both preferring broker 1, two
        replicas each: the canary moves them (AlterPartitionReassignments) and adds a
        partition for broker 3 (CreatePartitions), until each broker leads its own with
        three replicas, and every broker becomes available."""
        canary_topic = canary_settings(topic_name).topic
        await kafka3.create_topic(
            canary_topic, placement=[[1, 2], [1, 3]], configs={"min.insync.replicas": "1"}
        )
        async with canary_monitor(kafka3, topic_name) as monitor:
            canary = monitor.canary
            assert canary is not None

            async def placed() -> bool:
                view = canary.leaders
                return (
                    dict(canary.owners) == {0: 1, 1: 2, 2: 3}
                    and canary.placement_is_settled
                    and all(view.get(p) == b for p, b in canary.owners.items())
                )

            await wait_until(placed, within=90.0)
            await wait_until(lambda: all_available(monitor), within=30.0)
            assert canary.replicas == {0: (1, 2, 3), 1: (2, 3, 1), 2: (3, 1, 2)}
            assert canary.stats.placement_changes >= 1
            # Three replicas now: min.insync.replicas followed the replication factor.
            assert await min_insync_replicas(kafka3, canary_topic) == "2"
            await assert_no_canary_loss(monitor)
