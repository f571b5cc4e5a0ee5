"""A monitor owning hundreds of partitions starts, checkpoints and restarts exactly."""

from __future__ import annotations

import pytest
from monitor_support import (
    gap_ranges,
    get_json,
    monitor_config,
    send_stamped,
    start_monitor,
    wait_until,
)

from gapwatch.monitor.app import RunningMonitor
from gapwatch.monitor.ingest.logcheck import CHECK_CHUNK
from gapwatch.monitor.state.rounds import COMMIT_CHUNK
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.kafka

PARTITIONS = 300


async def positions(monitor: RunningMonitor) -> dict[int, int | None]:
    """Every owned partition's read position, by partition, once all are restored."""
    body = await get_json(monitor, "/streams")
    if len(body["partitions"]) < PARTITIONS or not all(p["restored"] for p in body["partitions"]):
        return {}
    return {p["partition"]: p["position"] for p in body["partitions"]}


class TestWideTopic:
    async def test_every_partition_starts_at_start_from_and_resumes_from_its_checkpoint(
        self, kafka: KafkaCluster, make_topic: MakeTopic
    ) -> None:
        """With a fresh group, each of 300 partitions starts at the beginning of its log
        (empty or not); after a restart, each resumes from its own checkpoint: the records
        sent meanwhile are read once, with no new baseline (no false gap) and the gap found
        before the restart still known. The offsets of 300 partitions take more than one
        commit request, so this also proves chunked commits point at each checkpoint; every
        restored partition's log check (asked for in chunks of ``CHECK_CHUNK``) is done."""
        assert PARTITIONS > COMMIT_CHUNK
        assert PARTITIONS > CHECK_CHUNK
        topic = await make_topic(partitions=PARTITIONS)
        bootstrap = kafka.bootstrap_servers
        config = monitor_config(bootstrap, [topic], f"g-{topic}")
        await send_stamped(bootstrap, topic, 0, range(5))
        await send_stamped(bootstrap, topic, PARTITIONS - 1, [0, 1, 3, 4])
        first = await start_monitor(config)
        try:
            read = await wait_until(lambda: _read_to(first, {0: 5, PARTITIONS - 1: 4}), within=60.0)
            assert {p: pos for p, pos in read.items() if pos} == {0: 5, PARTITIONS - 1: 4}
            gaps = (await get_json(first, "/gaps"))["gaps"]
            assert gap_ranges(gaps, "open") | gap_ranges(gaps, "confirmed") == {
                (PARTITIONS - 1, 2, 2)
            }
        finally:
            await first.stop()
        await send_stamped(bootstrap, topic, 0, range(5, 10))
        second = await start_monitor(config)
        try:
            read = await wait_until(
                lambda: _read_to(second, {0: 10, PARTITIONS - 1: 4}), within=60.0
            )
            assert {p: pos for p, pos in read.items() if pos} == {0: 10, PARTITIONS - 1: 4}
            assert second.health.checkpoint_restore_failures == 0
            gaps = (await get_json(second, "/gaps"))["gaps"]
            assert gap_ranges(gaps, "open") | gap_ranges(gaps, "confirmed") == {
                (PARTITIONS - 1, 2, 2)
            }
            streams = (await get_json(second, "/streams"))["partitions"]
            first_partition = next(p for p in streams if p["partition"] == 0)
            assert first_partition["records"] == 10

            async def all_checked() -> bool:
                return not any(state.needs_verify for state in second.partitions)

            assert await wait_until(all_checked, within=60.0)
        finally:
            await second.stop()


async def _read_to(monitor: RunningMonitor, wanted: dict[int, int]) -> dict[int, int | None]:
    """The positions once every partition is restored and ``wanted`` ones are reached."""
    read = await positions(monitor)
    if read and all(read.get(p) == pos for p, pos in wanted.items()):
        return read
    return {}
