"""An unclean leader election truncates records the monitor already read (3 nodes).

Timeline (test bed timings: broker.session.timeout.ms 3 s, replica.lag.time.max.ms 5 s,
see docs/testing.md): RF 2, unclean election on, min ISR 1. Records 0..19 reach both
replicas. The follower is paused (SIGSTOP) until fenced and out of the ISR; records 20..29
are then acknowledged by the leader alone, the high watermark moves without the follower
and the monitor reads them. The leader is killed, the follower resumed: it is the only live
replica, so it can only become leader uncleanly, and its log ends at offset 20. Records
written after that refill offsets 20.. with new sequences.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from aiokafka.errors import KafkaError
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

from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.kafka


async def _wait_isr(cluster: KafkaCluster, topic: str, isr: set[int], within: float) -> None:
    deadline = time.monotonic() + within
    seen = None
    while time.monotonic() < deadline:
        try:
            seen = await cluster.describe_partition(topic, 0)
        except KafkaError:
            # The admin client may pick the paused node (its port still accepts): retry.
            await asyncio.sleep(0.5)
            continue
        if set(seen.isr) == isr:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"ISR never became {isr}; last seen {seen}")


@pytest.mark.parametrize(
    "writes_before_detection", [False, True], ids=["monitor-looks-first", "writes-first"]
)
async def test_unclean_election_reports_truncated_sequences(
    kafka3: KafkaCluster, make_topic: MakeTopic, writes_before_detection: bool
) -> None:
    """Exactly the already-read sequences the new leader lacks are reported truncated, the
    leader change is counted and shown, and records written afterwards are tracked on."""
    topic = await make_topic(
        kafka3, 1, 2, {"unclean.leader.election.enable": "true", "min.insync.replicas": "1"}
    )
    initial = await kafka3.wait_for_leader(topic, 0)
    assert initial.leader is not None
    leader = initial.leader
    (follower,) = (r for r in initial.replicas if r != leader)
    bootstrap = kafka3.bootstrap_servers
    monitor = await start_monitor(monitor_config(bootstrap, [topic], f"g-{topic}"))
    try:
        await send_stamped(bootstrap, topic, 0, range(20))
        await wait_for_position(monitor, 20)

        kafka3.pause_node(follower)
        await _wait_isr(kafka3, topic, {leader}, within=30.0)
        await send_stamped(bootstrap, topic, 0, range(20, 30))
        await wait_for_position(monitor, 30)  # read while only the leader had them

        kafka3.kill_node(leader)
        kafka3.resume_node(follower)
        elected = await kafka3.wait_for_leader(topic, 0, exclude=[leader], timeout_s=90.0)
        assert elected.leader == follower

        async def truncated() -> list[dict[str, object]] | None:
            gaps = (await get_json(monitor, "/gaps"))["gaps"]
            return gaps if gap_ranges(gaps, "truncated") else None

        if writes_before_detection:
            await send_stamped(bootstrap, topic, 0, range(30, 35))
            await wait_until(truncated, within=60.0)
        else:
            await wait_until(truncated, within=60.0)
            await send_stamped(bootstrap, topic, 0, range(30, 35))
        await wait_for_position(monitor, 25)
        await asyncio.sleep(2.0)  # past the 1 s grace: a false gap would be confirmed now
        gaps = (await get_json(monitor, "/gaps"))["gaps"]
        assert gap_ranges(gaps, "truncated") == {(0, 20, 29)}
        assert gap_ranges(gaps, "confirmed") == set()
        assert gap_ranges(gaps, "open") == set()
        partition = (await get_json(monitor, "/streams"))["partitions"][0]
        assert partition["leader"] == follower
        assert partition["leader_changes"] >= 1
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{monitor.http_port}/metrics")).text
        labels = {"topic": topic, "partition": "0"}
        assert metric_value(text, "gapwatch_truncated_records_total", **labels) == 10
        assert metric_value(text, "gapwatch_leader_changes_total", **labels) >= 1
    finally:
        await monitor.stop()
        # Give the session cluster its node back (the plugin heals too, before later tests).
        kafka3.resume_node(follower)
        kafka3.restart_node(leader)
