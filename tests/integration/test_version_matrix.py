"""The monitor detects exactly on every Kafka version gapwatch is tested on.

One scenario per version of :data:`~gapwatch.testing.kafka.TESTED_KAFKA_VERSIONS` (the
newest 3.x, the default and the newest 4.x), each on a one-node cluster of that version
started after the previous one was stopped; the default version reuses the session's
``kafka`` cluster. The scenario: losses and duplicates injected by the load generator's
fault plan, a clean stop, then a loss and a duplicate that only the checkpointed tracker
can see, found by the restarted monitor.
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
from prometheus_client import CollectorRegistry

from gapwatch.monitor.app import RunningMonitor
from gapwatch.producer.faults import FaultPlan
from gapwatch.producer.loadgen import LoadgenConfig, run_loadgen
from gapwatch.testing.kafka import TESTED_KAFKA_VERSIONS, KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.kafka

Ranges = set[tuple[int, int, int]]


@pytest.fixture(params=TESTED_KAFKA_VERSIONS, ids=lambda version: f"kafka-{version}")
def versioned_kafka(request: pytest.FixtureRequest, kafka: KafkaCluster) -> Iterator[KafkaCluster]:
    """A one-node cluster of the requested version, stopped after the test so that only
    one extra cluster runs at a time; the session cluster when it is that version (taking
    it as an argument lets the plugin heal it before the test, as for any other)."""
    version: str = request.param
    if version == kafka.version:
        yield kafka
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


def drop_runs(dropped: list[int]) -> set[tuple[int, int]]:
    """Consecutive dropped sequences as (first, last) runs."""
    runs: list[list[int]] = []
    for seq in sorted(dropped):
        if runs and runs[-1][1] == seq - 1:
            runs[-1][1] = seq
        else:
            runs.append([seq, seq])
    return {(first, last) for first, last in runs}


async def test_loss_duplicate_and_checkpointed_restart_are_exact(
    versioned_kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    """Before a restart, a StampedProducer (the load generator with a seeded fault plan)
    drops and duplicates records: every drop is confirmed, every duplicate counted. After
    a clean stop, its stream goes on with 100-101 lost and an early sequence sent again:
    that loss is visible only to a tracker restored from the checkpoint (a fresh one would
    take 102 as the stream's first record), that duplicate only to one that remembers the
    sequence. The restarted monitor reads on from its checkpoint, re-reading nothing, and
    its counts go on from the first run's."""
    kafka = versioned_kafka
    topic = await make_topic(cluster=kafka, partitions=1)
    report_topic = f"{topic}-reports"
    await kafka.create_topic(report_topic, configs={"cleanup.policy": "compact,delete"})
    bootstrap = kafka.bootstrap_servers
    config = monitor_config(bootstrap, [topic], f"g-{topic}")
    labels = {"topic": topic, "partition": "0"}

    load = LoadgenConfig(
        bootstrap_servers=bootstrap,
        topics=(topic,),
        rate=0,
        count=100,
        duration_s=None,
        producer_prefix="matrix",
        faults=FaultPlan(drop=0.03, duplicate=0.03, seed=20),
        report_topic=report_topic,
    )
    truth = await run_loadgen(load, registry=CollectorRegistry())
    (stream,) = truth["streams"]
    dropped, duplicated = stream["dropped"], stream["duplicated"]
    # The seed drops records between others (a dropped first or last record cannot be
    # seen from the sequence alone), two of them in a row, and duplicates some.
    assert stream["last_seq"] == 99
    assert dropped
    assert 0 not in dropped
    assert 99 not in dropped
    assert any(last > first for first, last in drop_runs(dropped))
    assert duplicated
    before = {(0, a, b) for a, b in drop_runs(dropped)}
    read_before = 100 - len(dropped) + len(duplicated)

    first = await start_monitor(config)
    try:
        await wait_for_position(first, read_before)
        assert await confirmed_gaps(first, len(before)) == before
        text = await metrics_text(first)
    finally:
        await first.stop()  # writes and commits the checkpoint at the end of the log
    assert metric_value(text, "gapwatch_records_total", **labels) == read_before
    assert metric_value(text, "gapwatch_duplicate_records_total", **labels) == len(duplicated)
    assert metric_value(text, "gapwatch_missing_records_total", **labels) == len(dropped)

    again = next(seq for seq in range(50, 100) if seq not in dropped)
    producer, epoch = truth["run"]["producers"][0]["producer"], stream["epoch"]
    await send_stamped(
        bootstrap, topic, 0, [*range(102, 130), again], producer=producer, epoch=epoch
    )
    second = await start_monitor(config)
    try:
        await wait_for_position(second, read_before + 29)  # 28 more records and a duplicate
        assert await confirmed_gaps(second, len(before) + 1) == {*before, (0, 100, 101)}
        await asyncio.sleep(1.5)  # past the 1 s grace: a false gap would be confirmed now
        gaps = (await get_json(second, "/gaps", scope="local"))["gaps"]
        partition = (await get_json(second, "/streams"))["partitions"][0]
        text = await metrics_text(second)
    finally:
        await second.stop()
    assert gap_ranges(gaps, "confirmed") == {*before, (0, 100, 101)}
    assert len(gaps) == len(before) + 1
    # The counters come back with the tracker and go on from there: re-reading any record
    # of the first run would add to records and duplicates.
    assert partition["records"] == read_before + 29
    assert metric_value(text, "gapwatch_records_total", **labels) == read_before + 29
    assert metric_value(text, "gapwatch_duplicate_records_total", **labels) == len(duplicated) + 1
    assert metric_value(text, "gapwatch_missing_records_total", **labels) == len(dropped) + 2
