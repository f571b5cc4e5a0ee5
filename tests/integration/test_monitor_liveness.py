"""The monitor keeps reading while Kafka's slow paths fail, and reads reports it must see.

- A frozen (SIGSTOPped) group coordinator makes every offset commit hang; checkpoints and
  commits run outside the consumer's lock with a bounded timeout, so fetching and gap
  detection go on, failures are counted, and commits succeed again after the pause
  (found by chaos scenario 3, see docs/loss-scenarios.md).
- The producer report topic is created at monitor start if missing, so reports of
  producers started later are read at once, not after the next metadata refresh.
"""

from __future__ import annotations

import dataclasses

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from chaos_support import group_coordinator
from monitor_support import get_json, monitor_config, send_stamped, start_monitor, wait_until

from gapwatch.kafka.topics import cleanup_policies
from gapwatch.monitor.app import RunningMonitor
from gapwatch.monitor.config import ReportSettings
from gapwatch.producer.config import ReportConfig
from gapwatch.producer.stamped import StampedProducer
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic, random_topic_name

pytestmark = pytest.mark.kafka


async def _topic_led_elsewhere(cluster: KafkaCluster, group: str) -> tuple[str, int, int]:
    """A fresh 1-partition topic pinned to a node other than ``group``'s coordinator.

    Pinned, not searched for: with few offsets partitions and leader rebalancing off,
    earlier fault tests can leave every coordinator on one node."""
    coordinator = await group_coordinator(cluster, group)
    leader = next(node for node in cluster.node_ids if node != coordinator)
    topic = random_topic_name("coordinator-frozen")
    await cluster.create_topic(topic, placement=[[leader]])
    state = await cluster.wait_for_leader(topic, 0)
    assert state.leader == leader
    return topic, leader, coordinator


async def _position(monitor: RunningMonitor) -> int | None:
    streams = await get_json(monitor, "/streams")
    positions = [p["position"] for p in streams["partitions"]]
    return positions[0] if positions else None


async def _committed(bootstrap: str, group: str, tp: TopicPartition) -> int:
    """The group's committed offset of ``tp`` (-1: none, or not answerable now)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group, partitions=[tp])
    except KafkaError:
        return -1
    finally:
        await admin.close()
    return offsets[tp].offset if tp in offsets else -1


async def test_reading_continues_while_the_group_coordinator_is_frozen(
    kafka3: KafkaCluster,
) -> None:
    """With the group coordinator paused, new records are read within seconds while
    checkpoint rounds fail (counted); after the pause commits catch up with the position."""
    group = random_topic_name("g-coordinator-frozen")
    topic, leader, coordinator = await _topic_led_elsewhere(kafka3, group)
    # Records go straight to the topic's leader: a client bootstrapping through the
    # paused node would wait out its request timeout first.
    to_leader = kafka3.node_bootstrap(leader)
    tp = TopicPartition(topic, 0)
    monitor = await start_monitor(monitor_config(kafka3.bootstrap_servers, [topic], group))

    async def read_to(offset: int) -> bool:
        return await _position(monitor) == offset

    async def committed_to(offset: int) -> bool:
        return await _committed(to_leader, group, tp) == offset

    async def failures() -> int:
        return monitor.health.commit_failures + monitor.health.checkpoint_failures

    try:
        await send_stamped(to_leader, topic, 0, range(10))
        await wait_until(lambda: read_to(10))
        await wait_until(lambda: committed_to(10))
        assert await failures() == 0
        kafka3.pause_node(coordinator)
        try:
            await send_stamped(to_leader, topic, 0, range(10, 20))
            # Checkpoint rounds (every 0.5 s) hang on the frozen coordinator meanwhile;
            # reading must not wait for them.
            await wait_until(lambda: read_to(20), within=5.0)
            await wait_until(failures, within=45.0)
            assert monitor.consumer_task is not None
            assert not monitor.consumer_task.done()
        finally:
            kafka3.resume_node(coordinator)
        await send_stamped(to_leader, topic, 0, range(20, 30))
        await wait_until(lambda: read_to(30), within=60.0)
        await wait_until(lambda: committed_to(30), within=60.0)
        gaps = (await get_json(monitor, "/gaps", limit=1000))["gaps"]
        assert [g for g in gaps if g["topic"] == topic] == []
    finally:
        await monitor.stop()


async def test_reports_of_a_producer_started_after_the_monitor_are_read(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    """The monitor creates a missing report topic with the producers' settings, so a
    producer that does not create it itself, started later, has its reports read at once."""
    topic = await make_topic(partitions=1)
    report_topic = f"reports-{topic}"
    config = monitor_config(kafka.bootstrap_servers, [topic], f"g-{topic}")
    config = dataclasses.replace(config, reports=ReportSettings(topic=report_topic, enabled=True))
    monitor = await start_monitor(config)
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
        await admin.start()
        try:
            policies = await cleanup_policies(admin, [report_topic])
        finally:
            await admin.close()
        assert policies == {report_topic: ReportConfig().topic_configs["cleanup.policy"]}
        producer = StampedProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            producer_id="late-reporter",
            reports=ReportConfig(topic=report_topic, interval_s=0.5, create_topic=False),
            registry=None,
        )
        await producer.start()
        try:
            for _ in range(5):
                await producer.send_and_wait(topic, b"x", partition=0)
        finally:
            await producer.stop()

        async def reports_read() -> int:
            return monitor.health.reports_read

        await wait_until(reports_read, within=20.0)
    finally:
        await monitor.stop()
