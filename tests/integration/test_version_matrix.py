"""The monitor detects exactly on every Kafka version gapwatch is tested on.

One scenario per version of :data:`~gapwatch.testing.kafka.TESTED_KAFKA_VERSIONS` (the
newest 3.x, the default and the newest 4.x), each on a one-node cluster of that version
started after the previous one was stopped; the default version reuses the session's
``kafka`` cluster. The scenario: a loss and a duplicate, a clean stop, then a loss and a
duplicate that only the checkpointed tracker can see, found by the restarted monitor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
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

from gapwatch.monitor.app import RunningMonitor
from gapwatch.testing.kafka import TESTED_KAFKA_VERSIONS, KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.kafka

Ranges = set[tuple[int, int, int]]


@pytest.fixture(params=TESTED_KAFKA_VERSIONS, ids=lambda version: f"kafka-{version}")
def versioned_kafka(request: pytest.FixtureRequest) -> Iterator[KafkaCluster]:
    """A one-node cluster of the requested version, stopped after the test so that only
    one extra cluster runs at a time; the session cluster when it is that version."""
    version: str = request.param
    session_cluster: KafkaCluster = request.getfixturevalue("kafka")
    if version == session_cluster.version:
        yield session_cluster
        return
    cluster = KafkaCluster(nodes=1, version=version)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


async def confirmed_gaps(monitor: RunningMonitor, count: int) -> Ranges:
    """The confirmed gaps once there are ``count`` of them."""

    async def enough() -> Ranges | None:
        gaps = (await get_json(monitor, "/gaps", scope="local"))["gaps"]
        ranges = gap_ranges(gaps, "confirmed")
        return ranges if len(ranges) >= count else None

    found: Ranges = await wait_until(enough)
    return found


async def metrics_text(monitor: RunningMonitor) -> str:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"http://127.0.0.1:{monitor.http_port}/metrics")).text


async def test_loss_duplicate_and_checkpointed_restart_are_exact(
    versioned_kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    """Before a restart: 10-11 lost, 5 sent twice. After it: 40-41 lost, 20 sent again.
    The second loss is visible only to a tracker restored from the checkpoint (a fresh one
    would take 42 as the stream's first record), the second duplicate only to one that
    remembers 20; the restarted monitor reads on from its checkpoint, re-reading nothing,
    and its counts go on from the first run's."""
    kafka = versioned_kafka
    topic = await make_topic(cluster=kafka, partitions=1)
    bootstrap = kafka.bootstrap_servers
    config = monitor_config(bootstrap, [topic], f"g-{topic}")
    labels = {"topic": topic, "partition": "0"}

    await send_stamped(bootstrap, topic, 0, [*(s for s in range(40) if s not in (10, 11)), 5])
    first = await start_monitor(config)
    try:
        await wait_for_position(first, 39)  # 38 records and one duplicate
        assert await confirmed_gaps(first, 1) == {(0, 10, 11)}
        text = await metrics_text(first)
    finally:
        await first.stop()  # writes and commits the checkpoint at offset 39
    assert metric_value(text, "gapwatch_records_total", **labels) == 39
    assert metric_value(text, "gapwatch_duplicate_records_total", **labels) == 1
    assert metric_value(text, "gapwatch_missing_records_total", **labels) == 2

    await send_stamped(bootstrap, topic, 0, [*range(42, 70), 20])
    second = await start_monitor(config)
    try:
        await wait_for_position(second, 68)  # 28 more records and one duplicate
        assert await confirmed_gaps(second, 2) == {(0, 10, 11), (0, 40, 41)}
        await asyncio.sleep(1.5)  # past the 1 s grace: a false gap would be confirmed now
        gaps = (await get_json(second, "/gaps", scope="local"))["gaps"]
        partition = (await get_json(second, "/streams"))["partitions"][0]
        text = await metrics_text(second)
    finally:
        await second.stop()
    assert gap_ranges(gaps, "confirmed") == {(0, 10, 11), (0, 40, 41)}
    assert len(gaps) == 2
    # The counters come back with the tracker and go on from there: re-reading any record
    # before offset 39 would add to records and duplicates.
    assert partition["records"] == 39 + 29
    assert metric_value(text, "gapwatch_records_total", **labels) == 39 + 29
    assert metric_value(text, "gapwatch_duplicate_records_total", **labels) == 1 + 1
    assert metric_value(text, "gapwatch_missing_records_total", **labels) == 2 + 2
