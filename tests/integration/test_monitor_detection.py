"""The monitor against a real Kafka: gaps, late records, duplicates, restarts, metrics."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging

import httpx
import pytest
from monitor_support import (
    gap_ranges,
    get_json,
    metric_value,
    monitor_config,
    send_raw,
    send_stamped,
    start_monitor,
    wait_until,
)

from gapwatch.cli import main
from gapwatch.kafka.topics import CompactedTopicError
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.kafka


async def test_drops_duplicates_and_late_records_across_partitions(
    kafka: KafkaCluster, make_topic: MakeTopic, topic_name: str
) -> None:
    """Dropped sequences are confirmed, a late one heals, a duplicate and junk are counted."""
    topic = await make_topic(partitions=3)
    bootstrap = kafka.bootstrap_servers
    # p0: 5,6 dropped; 12 arrives after 19 (late -> heals); 3 sent twice.
    p0 = [s for s in range(20) if s not in (5, 6, 12)] + [12, 3]
    await send_stamped(bootstrap, topic, 0, p0)
    await send_stamped(bootstrap, topic, 1, range(10), producer="p2")
    await send_stamped(bootstrap, topic, 2, [s for s in range(10) if s != 4])
    await send_raw(bootstrap, topic, 1, [])
    await send_raw(bootstrap, topic, 1, [("gapwatch-seq", b"1")])

    monitor = await start_monitor(monitor_config(bootstrap, [topic], f"g-{topic}"))
    try:

        async def confirmed() -> list[dict[str, object]] | None:
            gaps = (await get_json(monitor, "/gaps", limit=1000))["gaps"]
            return gaps if len(gap_ranges(gaps, "confirmed")) >= 2 else None

        gaps = await wait_until(confirmed)
        assert gap_ranges(gaps, "confirmed") == {(0, 5, 6), (2, 4, 4)}
        assert gap_ranges(gaps, "healed") == {(0, 12, 12)}
        assert gap_ranges(gaps, "open") == set()
        one = await get_json(monitor, f"/gaps/{gaps[0]['id']}")
        assert one["id"] == gaps[0]["id"]

        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{monitor.http_port}/metrics")).text
        assert metric_value(text, "gapwatch_missing_records_total", topic=topic, partition="0") == 2
        assert metric_value(text, "gapwatch_missing_records_total", topic=topic, partition="2") == 1
        assert metric_value(text, "gapwatch_gaps_total", topic=topic, partition="0") == 1
        assert metric_value(text, "gapwatch_late_records_total", topic=topic, partition="0") == 1
        assert (
            metric_value(text, "gapwatch_duplicate_records_total", topic=topic, partition="0") == 1
        )
        assert (
            metric_value(text, "gapwatch_unstamped_records_total", topic=topic, partition="1") == 1
        )
        assert (
            metric_value(text, "gapwatch_malformed_records_total", topic=topic, partition="1") == 1
        )
        # Every assigned partition has its series, at 0 where nothing happened.
        assert f'gapwatch_missing_records_total{{partition="1",topic="{topic}"}} 0.0' in text
        assert metric_value(text, "gapwatch_partitions_assigned") == 3
        assert metric_value(text, "gapwatch_up") == 1
        streams = await get_json(monitor, "/streams")
        assert len(streams["partitions"]) == 3
    finally:
        await monitor.stop()


async def test_restart_finds_gap_made_while_down_and_nothing_false(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    """After a clean stop, a gap injected while no monitor runs is found on restart."""
    topic = await make_topic(partitions=1)
    bootstrap = kafka.bootstrap_servers
    config = monitor_config(bootstrap, [topic], f"g-{topic}")
    await send_stamped(bootstrap, topic, 0, range(50))
    first = await start_monitor(config)
    try:

        async def read_all() -> bool:
            streams = await get_json(first, "/streams")
            return bool(streams["partitions"]) and streams["partitions"][0]["position"] == 50

        await wait_until(read_all)
    finally:
        await first.stop()

    await send_stamped(bootstrap, topic, 0, [s for s in range(50, 80) if s != 60])
    second = await start_monitor(config)
    try:

        async def confirmed() -> list[dict[str, object]] | None:
            gaps = (await get_json(second, "/gaps"))["gaps"]
            return gaps if gap_ranges(gaps, "confirmed") else None

        gaps = await wait_until(confirmed)
        assert gap_ranges(gaps, "confirmed") == {(0, 60, 60)}
        assert len(gaps) == 1
        partition = (await get_json(second, "/streams"))["partitions"][0]
        # The restored tracker counted the 50 records read before the restart too.
        assert partition["records"] == 79
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{second.http_port}/metrics")).text
        assert metric_value(text, "gapwatch_duplicate_records_total", topic=topic) == 0
    finally:
        await second.stop()


async def test_compacted_topic_is_refused(kafka: KafkaCluster, make_topic: MakeTopic) -> None:
    """A compacted topic stops the monitor at start with a message naming it."""
    topic = await make_topic(partitions=1, configs={"cleanup.policy": "compact"})
    config = monitor_config(kafka.bootstrap_servers, [topic], f"g-{topic}")
    with pytest.raises(CompactedTopicError, match=topic):
        await start_monitor(config)


async def test_start_waits_for_its_new_topics_instead_of_flooding_metadata_errors(
    kafka: KafkaCluster, make_topic: MakeTopic, caplog: pytest.LogCaptureFixture
) -> None:
    """Right after a wide topic is created the broker is slow to list new topics; a monitor
    creating its gap log then must wait for it, not start clients that log an error per
    metadata retry (thousands in seconds before the fix)."""
    wide = await make_topic(partitions=200)
    config = monitor_config(kafka.bootstrap_servers, [wide], f"g-{wide}")
    fresh_log = dataclasses.replace(config.gap_log, topic=f"gaps-{wide}")
    caplog.set_level(logging.WARNING, logger="aiokafka")
    monitor = await start_monitor(dataclasses.replace(config, gap_log=fresh_log))
    try:
        await asyncio.sleep(1.0)
    finally:
        await monitor.stop()
    missing = [r for r in caplog.records if "not found in cluster metadata" in r.getMessage()]
    assert missing == []


async def test_audit_reports_the_same_gaps_and_exits_nonzero(
    kafka: KafkaCluster, make_topic: MakeTopic, capsys: pytest.CaptureFixture[str]
) -> None:
    """gapwatch audit finds exactly the dropped sequences; a late one heals; exit 1 on loss."""
    topic = await make_topic(partitions=2)
    bootstrap = kafka.bootstrap_servers
    await send_stamped(bootstrap, topic, 0, [s for s in range(30) if s not in (7, 8, 20)] + [20])
    await send_stamped(bootstrap, topic, 1, range(15))
    argv = ["audit", "--bootstrap-servers", bootstrap, "--topic", topic, "--json"]
    code = await asyncio.to_thread(main, argv)
    body = json.loads(capsys.readouterr().out)
    assert code == 1
    assert gap_ranges(body["gaps"], "confirmed") == {(0, 7, 8)}
    assert gap_ranges(body["gaps"], "healed") == {(0, 20, 20)}
    clean = await asyncio.to_thread(main, [*argv[:-1], "--partition", "1"])
    assert clean == 0
    assert "no gaps" in capsys.readouterr().out


async def test_audit_of_an_offset_range_reads_nothing_past_its_end(
    kafka: KafkaCluster, make_topic: MakeTopic, capsys: pytest.CaptureFixture[str]
) -> None:
    """--from-offset 3 --to-offset 12 judges offsets 3..11 only, although one fetch returns
    the whole partition: the gap inside is found, the late record after it is not read."""
    topic = await make_topic(partitions=1)
    bootstrap = kafka.bootstrap_servers
    # Offsets 0-6: seq 0-6; 7-17: seq 9-19; 18-26: seq 21-29; 27: seq 20 (late).
    await send_stamped(bootstrap, topic, 0, [s for s in range(30) if s not in (7, 8, 20)] + [20])
    argv = ["audit", "--bootstrap-servers", bootstrap, "--topic", topic, "--json"]
    code = await asyncio.to_thread(main, [*argv, "--from-offset", "3", "--to-offset", "12"])
    body = json.loads(capsys.readouterr().out)
    assert code == 1
    assert gap_ranges(body["gaps"], "confirmed") == {(0, 7, 8)}
    assert body["counters"]["0"]["records"] == 9
    assert body["counters"]["0"]["late"] == 0
