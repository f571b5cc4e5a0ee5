"""The monitor fetching in incremental fetch sessions (``kafka.fetch_sessions``).

A gap on a partition that goes idle after it is confirmed exactly and no earlier than the
watermark rule (R11) allows, although incremental responses leave that partition out; a
gap whose late record arrives within the grace period heals and is never confirmed (a
watermark time advanced without its watermark would confirm it falsely). The same holds
with the setting off (aiokafka's own fetching). Instances joining and leaving the group
move partitions between sessions and lose nothing.
"""

from __future__ import annotations

import dataclasses

import httpx
import pytest
from monitor_support import (
    gap_ranges,
    get_json,
    metric_value,
    monitor_config,
    send_stamped,
    start_monitor,
    wait_until,
)

from gapwatch.monitor.app import RunningMonitor
from gapwatch.monitor.config import MonitorConfig
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.kafka

GRACE = 6.0  # long enough that the late record always arrives within it


def with_sessions(config: MonitorConfig, enabled: bool) -> MonitorConfig:
    kafka = dataclasses.replace(config.kafka, fetch_sessions=enabled)
    return dataclasses.replace(config, kafka=kafka)


def total(text: str, name: str, topic: str) -> float:
    """The sum of one counter over the topic's partitions."""
    return sum(metric_value(text, name, topic=topic, partition=str(p)) for p in range(4))


async def metrics_text(monitor: RunningMonitor) -> str:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"http://127.0.0.1:{monitor.http_port}/metrics")).text


@pytest.mark.parametrize("sessions", [True, False], ids=["sessions", "no-sessions"])
async def test_gap_on_idle_partition_confirmed_by_the_watermark_rule_only(
    kafka: KafkaCluster, make_topic: MakeTopic, sessions: bool
) -> None:
    """Partition 0 loses sequence 5 and then goes idle: confirmed, no sooner than the
    grace period after it opened. Partition 1 misses sequence 3 until it arrives late,
    inside the grace period: healed, never confirmed. Partition 3 never gets a record."""
    topic = await make_topic(partitions=4)
    bootstrap = kafka.bootstrap_servers
    await send_stamped(bootstrap, topic, 0, [s for s in range(20) if s != 5])
    await send_stamped(bootstrap, topic, 1, [s for s in range(20) if s != 3], producer="p2")
    await send_stamped(bootstrap, topic, 2, range(10))
    config = monitor_config(bootstrap, [topic], f"g-{topic}", grace_period=GRACE)
    monitor = await start_monitor(with_sessions(config, sessions))
    try:
        assert (monitor.consumer.fetch_sessions is not None) is sessions

        async def late_gap_open() -> bool:
            gaps = (await get_json(monitor, "/gaps", limit=100))["gaps"]
            return (1, 3, 3) in gap_ranges(gaps, "open")

        await wait_until(late_gap_open)
        await send_stamped(bootstrap, topic, 1, [3], producer="p2")

        async def settled() -> list[dict[str, object]] | None:
            gaps = (await get_json(monitor, "/gaps", limit=100))["gaps"]
            done = gap_ranges(gaps, "confirmed") and gap_ranges(gaps, "healed")
            return gaps if done else None

        gaps = await wait_until(settled, within=60.0)
        assert gap_ranges(gaps, "confirmed") == {(0, 5, 5)}
        assert gap_ranges(gaps, "healed") == {(1, 3, 3)}
        assert len(gaps) == 2
        confirmed = next(g for g in gaps if g["state"] == "confirmed")
        assert isinstance(confirmed["updated_at_ts"], float)
        assert isinstance(confirmed["opened_at_ts"], float)
        assert confirmed["updated_at_ts"] >= confirmed["opened_at_ts"] + GRACE
        text = await metrics_text(monitor)
        assert total(text, "gapwatch_missing_records_total", topic) == 1
        assert metric_value(text, "gapwatch_late_records_total", topic=topic, partition="1") == 1
        assert "gapwatch_fetch_session_resets_total 0.0" in text.splitlines()
        if sessions:
            assert monitor.consumer.fetch_sessions is not None
            assert monitor.consumer.fetch_sessions.resets == 0
    finally:
        await monitor.stop()


async def test_instances_joining_and_leaving_keep_every_record(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    """A second instance joins (partitions leave the first one's sessions) and leaves
    again (they come back): every record is read once, the one dropped record is the one
    gap, nothing is counted twice."""
    topic = await make_topic(partitions=4)
    bootstrap = kafka.bootstrap_servers
    config = monitor_config(bootstrap, [topic], f"g-{topic}")
    for partition in range(4):
        await send_stamped(bootstrap, topic, partition, range(20))
    first = await start_monitor(config)
    second: RunningMonitor | None = None
    try:

        async def positions(monitor: RunningMonitor) -> dict[int, int]:
            partitions = (await get_json(monitor, "/streams"))["partitions"]
            return {p["partition"]: p["position"] for p in partitions}

        async def first_read_all() -> bool:
            return await positions(first) == {p: 20 for p in range(4)}

        await wait_until(first_read_all, within=60.0)
        second = await start_monitor(config)

        async def split() -> bool:
            assert second is not None
            mine, theirs = await positions(first), await positions(second)
            return len(mine) == 2 and len(theirs) == 2

        await wait_until(split, within=60.0)
        for partition in range(4):
            await send_stamped(bootstrap, topic, partition, range(20, 40))

        async def both_read_all() -> bool:
            assert second is not None
            merged = {**await positions(first), **await positions(second)}
            return merged == {p: 40 for p in range(4)}

        await wait_until(both_read_all, within=60.0)
        await second.stop()
        second = None

        async def first_owns_all() -> bool:
            return len(await positions(first)) == 4

        await wait_until(first_owns_all, within=60.0)
        for partition in range(4):
            await send_stamped(
                bootstrap, topic, partition, [s for s in range(40, 60) if (partition, s) != (2, 50)]
            )

        async def confirmed() -> list[dict[str, object]] | None:
            gaps = (await get_json(first, "/gaps", limit=100))["gaps"]
            return gaps if gap_ranges(gaps, "confirmed") else None

        gaps = await wait_until(confirmed, within=60.0)
        assert gap_ranges(gaps, "confirmed") == {(2, 50, 50)}
        assert len(gaps) == 1
        assert await positions(first) == {0: 60, 1: 60, 2: 59, 3: 60}
        text = await metrics_text(first)
        assert total(text, "gapwatch_duplicate_records_total", topic) == 0
        assert total(text, "gapwatch_missing_records_total", topic) == 1
        assert first.consumer.fetch_sessions is not None
    finally:
        if second is not None:
            await second.stop()
        await first.stop()
