"""The gap log and the fleet view on a real Kafka: every instance answers for the fleet."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from monitor_support import gap_ranges, monitor_config, send_stamped, wait_until
from prometheus_client import CollectorRegistry

from gapwatch.monitor.app import RunningMonitor
from gapwatch.monitor.config import MonitorConfig
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.kafka


async def start(config: MonitorConfig, name: str) -> RunningMonitor:
    monitor = RunningMonitor(config, registry=CollectorRegistry(), instance_id=name)
    await monitor.start()
    return monitor


async def get(monitor: RunningMonitor, path: str, **params: Any) -> Any:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{monitor.http_port}") as http:
        response = await http.get(path, params=params)
        response.raise_for_status()
        return response.json()


async def owned(monitor: RunningMonitor) -> set[int]:
    return {p["partition"] for p in (await get(monitor, "/streams"))["partitions"]}


async def split_between(a: RunningMonitor, b: RunningMonitor, partitions: int) -> None:
    async def check() -> bool:
        mine, theirs = await owned(a), await owned(b)
        return len(mine) + len(theirs) == partitions and bool(mine) and bool(theirs)

    await wait_until(check, within=60.0)


async def test_every_instance_lists_every_gap_with_its_owner_and_history_survives(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    """Two instances, one group: /gaps on either lists the gaps of both with the owner;
    after restarting both, the history is still there."""
    topic = await make_topic(partitions=4)
    bootstrap = kafka.bootstrap_servers
    config = monitor_config(bootstrap, [topic], f"g-{topic}")
    expected = {(p, 7 + p, 7 + p) for p in range(4)}
    # 16 before 15: a gap opens and heals. Healed gaps are not in any tracker's state, so
    # after a restart only the gap log can still know them.
    healed = {(p, 15, 15) for p in range(4)}
    order = [*range(15), 16, 15, *range(17, 20)]
    a = await start(config, "gw-a")
    b = await start(config, "gw-b")
    try:
        await split_between(a, b, 4)
        for partition in range(4):
            await send_stamped(
                bootstrap, topic, partition, [s for s in order if s != 7 + partition]
            )
        owners = {p: "gw-a" for p in await owned(a)} | {p: "gw-b" for p in await owned(b)}
        for monitor in (a, b):

            async def all_confirmed(m: RunningMonitor = monitor) -> list[dict[str, Any]] | None:
                gaps: list[dict[str, Any]] = (await get(m, "/gaps"))["gaps"]
                return gaps if gap_ranges(gaps, "confirmed") == expected else None

            gaps = await wait_until(all_confirmed, within=60.0)
            assert gap_ranges(gaps, "healed") == healed
            gaps = [g for g in gaps if g["state"] == "confirmed"]
            assert len(gaps) == 4
            assert {g["partition"]: g["instance"] for g in gaps} == owners
            local = (await get(monitor, "/gaps", scope="local"))["gaps"]
            assert {g["partition"] for g in local} == {
                p for p, who in owners.items() if who == monitor.instance_id
            }
            one = gaps[0]
            assert (await get(monitor, f"/gaps/{one['id']}"))["instance"] == one["instance"]
        ids = {g["id"] for g in gaps}
    finally:
        await a.stop()
        await b.stop()

    c = await start(config, "gw-c")
    d = await start(config, "gw-d")
    try:
        for monitor in (c, d):
            # Read back from the gap log at start, before any record is re-read.
            gaps = (await get(monitor, "/gaps", state="confirmed"))["gaps"]
            assert gap_ranges(gaps, "confirmed") == expected
            assert {g["id"] for g in gaps} == ids
            history = (await get(monitor, "/gaps", state="healed"))["gaps"]
            assert gap_ranges(history, "healed") == healed
            # Owners: the old ones, or the new instance that has taken the partition over.
            assert {g["instance"] for g in gaps} <= {"gw-a", "gw-b", "gw-c", "gw-d"}
    finally:
        await c.stop()
        await d.stop()
