"""Origins and duplicate makers on a hand-made copy: the monitor's lookups on a real Kafka.

A "mirror" written by the test itself (the same stamps, timestamps and partition on a
topic named ``src.<topic>``) states exactly what the source and the target hold, so each
origin rule is met on purpose; the MirrorMaker 2 scenarios are in ``test_mirror_mm2.py``.
"""

from __future__ import annotations

import time

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from mirror_support import (
    metrics_text,
    mirror_config,
    mirror_metric,
    origins_by_range,
    send_timed,
    wait_for_origins,
)
from monitor_support import start_monitor, wait_until

from gapwatch.monitor.app import RunningMonitor
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.kafka


async def _page_has(monitor: RunningMonitor, line: str) -> bool:
    return line in (await metrics_text(monitor)).splitlines()


async def test_upstream_and_mirror_loss_and_both_kinds_of_duplicates(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    """Source lacks 10-12 (origin source); the copy lacks 20-22 (origin mirror); 5 and 6
    copied twice (mirror duplicates); 30 written twice at the source (its duplicate)."""
    bootstrap = kafka.bootstrap_servers
    source = await make_topic(partitions=1)
    target = f"src.{source}"
    await kafka.create_topic(target, partitions=1, replication_factor=1)
    base = int(time.time() * 1000) - 60_000
    at = {seq: base + 10 * seq for seq in range(40)}
    on_source = [(s, at[s]) for s in range(40) if s not in (10, 11, 12)]
    on_source.append((30, at[30]))
    await send_timed(bootstrap, source, 0, on_source)
    copied = [(s, t) for s, t in on_source if s not in (20, 21, 22)]
    copied += [(5, at[5]), (6, at[6])]
    await send_timed(bootstrap, target, 0, copied)

    config = mirror_config(bootstrap, [target], f"g-{target}", sources={"src": bootstrap})
    monitor = await start_monitor(config)
    try:
        gaps = await wait_for_origins(monitor, target, 2)
        assert origins_by_range(gaps) == {(0, 10, 12): "source", (0, 20, 22): "mirror"}
        for gap in gaps:
            assert (gap["source_cluster"], gap["source_topic"]) == ("src", source)
        reasons = {g["first_seq"]: g["origin_reason"] for g in gaps}
        assert reasons[10].startswith("not-in-source: ")
        assert reasons[20].startswith("in-source: ")

        labels = {"topic": target, "partition": "0", "source_cluster": "src"}

        async def duplicates_split() -> bool:
            made = [
                await mirror_metric(
                    monitor, "gapwatch_mirror_duplicate_records_total", made_by=m, **labels
                )
                for m in ("mirror", "source", "unknown")
            ]
            return made == [2, 1, 0]

        await wait_until(duplicates_split)
        for origin, count in (("mirror", 3), ("source", 3), ("unknown", 0)):
            assert (
                await mirror_metric(
                    monitor, "gapwatch_mirror_missing_records_total", origin=origin, **labels
                )
                == count
            )
        # The copy's newest record is the source's newest: no lag, once measured.
        lag_line = 'gapwatch_mirror_lag_records{partition="0",source_cluster="src",topic="%s"} 0.0'
        assert await wait_until(lambda: _page_has(monitor, lag_line % target))
    finally:
        await monitor.stop()


async def test_a_range_deleted_from_the_source_is_unknown_by_retention(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    """The copy lacks 10-19 and the source's log start moved past them: nobody can say."""
    bootstrap = kafka.bootstrap_servers
    source = await make_topic(partitions=1)
    target = f"src.{source}"
    await kafka.create_topic(target, partitions=1, replication_factor=1)
    base = int(time.time() * 1000) - 60_000
    records = [(s, base + 10 * s) for s in range(30)]
    await send_timed(bootstrap, source, 0, records)
    await send_timed(bootstrap, target, 0, [r for r in records if not 10 <= r[0] <= 19])
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        tp = TopicPartition(source, 0)
        moved = await admin.delete_records({tp: RecordsToDelete(20)}, timeout_ms=30_000)
        assert moved[tp] == 20
    finally:
        await admin.close()

    config = mirror_config(bootstrap, [target], f"g-{target}", sources={"src": bootstrap})
    monitor = await start_monitor(config)
    try:
        (gap,) = await wait_for_origins(monitor, target, 1)
        assert (gap["first_seq"], gap["last_seq"], gap["origin"]) == (10, 19, "unknown")
        assert gap["origin_reason"].startswith("retention: the source log now starts at offset 20")
        labels = {"topic": target, "partition": "0", "source_cluster": "src"}
        assert (
            await mirror_metric(
                monitor, "gapwatch_mirror_missing_records_total", origin="unknown", **labels
            )
            == 10
        )
    finally:
        await monitor.stop()
