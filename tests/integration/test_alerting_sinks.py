"""Alertmanager and webhook sinks on a real Kafka, posting to real receivers on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import defaultdict
from datetime import datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from monitor_support import gap_ranges, metric_value, monitor_config, send_stamped, wait_until
from prometheus_client import CollectorRegistry

from gapwatch.alerting.changes import decode_change
from gapwatch.alerting.webhook import verify_signature
from gapwatch.monitor.app import RunningMonitor
from gapwatch.monitor.config import AlertingSettings, GapLogSettings, MonitorConfig
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic
from gapwatch.testing.receiver import Received, run_receiver

pytestmark = pytest.mark.kafka

SECRET = "a-webhook-secret-of-some-length"
LABELS = {"alertname", "severity", "topic", "partition", "producer", "gap_id"}


def with_alerting(config: MonitorConfig, **alerting: Any) -> MonitorConfig:
    settings = AlertingSettings(
        repost_interval=1.0,
        loss_hold=6.0,
        sink_timeout=0.5,
        sink_max_retries=1,
        sink_backoff_initial=0.1,
        sink_backoff_max=0.2,
        external_url="http://gapwatch.example:8571",
    )
    return dataclasses.replace(config, alerting=dataclasses.replace(settings, **alerting))


async def start(config: MonitorConfig, name: str) -> RunningMonitor:
    monitor = RunningMonitor(config, registry=CollectorRegistry(), instance_id=name)
    await monitor.start()
    return monitor


async def get(monitor: RunningMonitor, path: str, **params: Any) -> Any:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{monitor.http_port}") as http:
        response = await http.get(path, params=params)
        response.raise_for_status()
        return response.json() if path != "/metrics" else response.text


async def owned(monitor: RunningMonitor) -> set[int]:
    return {p["partition"] for p in (await get(monitor, "/streams"))["partitions"]}


def when(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def alerts_by_gap(received: list[Received]) -> dict[str, list[tuple[float, dict[str, Any]]]]:
    """Every posted alert per gap_id, with the time its POST arrived."""
    found: dict[str, list[tuple[float, dict[str, Any]]]] = defaultdict(list)
    for request in received:
        for alert in request.json():
            if "gap_id" in alert["labels"]:
                found[alert["labels"]["gap_id"]].append((request.at, alert))
    return found


async def test_one_alert_per_confirmed_gap_across_the_fleet_reposted_then_resolved(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    """Two instances: each confirmed gap is one alert, posted only by its owner, with the
    documented labels; re-posted while firing; resolved (endsAt in the past) after the hold."""
    topic = await make_topic(partitions=4)
    bootstrap = kafka.bootstrap_servers
    with run_receiver() as receiver:
        config = with_alerting(
            monitor_config(bootstrap, [topic], f"g-{topic}"), alertmanager_urls=(receiver.url,)
        )
        a, b = await start(config, "gw-a"), await start(config, "gw-b")
        try:

            async def split() -> bool:
                mine, theirs = await owned(a), await owned(b)
                return len(mine | theirs) == 4 and bool(mine) and bool(theirs)

            await wait_until(split, within=60.0)
            owners = {p: "gw-a" for p in await owned(a)} | {p: "gw-b" for p in await owned(b)}
            for partition in range(4):
                await send_stamped(bootstrap, topic, partition, [0, 1, 2, 4, 5])

            async def confirmed() -> list[dict[str, Any]] | None:
                gaps: list[dict[str, Any]] = (await get(a, "/gaps", state="confirmed"))["gaps"]
                return gaps if len(gaps) == 4 else None

            gaps = await wait_until(confirmed, within=60.0)
            assert gap_ranges(gaps, "confirmed") == {(p, 3, 3) for p in range(4)}

            def resolved_all() -> bool:
                posts = alerts_by_gap(receiver.received())
                return len(posts) == 4 and all(
                    any(when(alert["endsAt"]) <= at for at, alert in items)
                    for items in posts.values()
                )

            async def resolved() -> bool:
                return resolved_all()

            await wait_until(resolved, within=30.0)
        finally:
            await a.stop()
            await b.stop()
    posts = alerts_by_gap(receiver.received())
    assert set(posts) == {g["id"] for g in gaps}
    for gap in gaps:
        items = posts[gap["id"]]
        labels = items[0][1]["labels"]
        assert set(labels) == LABELS
        assert labels["alertname"] == "GapwatchGapConfirmed"
        assert labels["severity"] == "critical"
        assert (labels["topic"], labels["partition"]) == (topic, str(gap["partition"]))
        assert labels["producer"] == "p1"
        notes = items[0][1]["annotations"]
        assert notes["count"] == "1"
        assert notes["sequence_range"] == "3..3"
        assert notes["gap_url"] == f"http://gapwatch.example:8571/gaps/{gap['id']}"
        assert notes["producer_told"] == "false"
        # Only the owning instance posts it.
        assert {alert["annotations"]["monitor"] for _, alert in items} == {owners[gap["partition"]]}
        firing = [(at, alert) for at, alert in items if when(alert["endsAt"]) > at]
        assert len(firing) >= 2, "re-posted while firing"
        ends = [when(alert["endsAt"]) for at, alert in items if when(alert["endsAt"]) <= at]
        confirmed_at = gap["confirmed_at"]
        assert abs(ends[0] - (when(confirmed_at) + 6.0)) < 0.01, "resolved at confirmation + hold"


async def test_recovered_gap_resolves_at_once(kafka: KafkaCluster, make_topic: MakeTopic) -> None:
    """The missing record arrives after confirmation: the alert is resolved immediately."""
    topic = await make_topic(partitions=1)
    bootstrap = kafka.bootstrap_servers
    with run_receiver() as receiver:
        config = with_alerting(
            monitor_config(bootstrap, [topic], f"g-{topic}"),
            alertmanager_urls=(receiver.url,),
            loss_hold=600.0,
        )
        monitor = await start(config, "gw-a")
        try:
            await send_stamped(bootstrap, topic, 0, [0, 1, 3, 4])

            async def firing() -> bool:
                return bool(alerts_by_gap(receiver.received()))

            await wait_until(firing, within=30.0)
            late_at = time.time()
            await send_stamped(bootstrap, topic, 0, [2])

            async def resolved() -> float | None:
                for items in alerts_by_gap(receiver.received()).values():
                    for at, alert in items:
                        if when(alert["endsAt"]) <= at:
                            return when(alert["endsAt"])
                return None

            ends = await wait_until(resolved, within=30.0)
            gap = (await get(monitor, "/gaps"))["gaps"][0]
        finally:
            await monitor.stop()
    assert gap["state"] == "recovered"
    assert late_at <= ends < late_at + 10.0


async def test_webhook_receiver_verifies_signed_events(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    """Confirmed gaps reach the webhook as JSON whose signature the receiver verifies."""
    topic = await make_topic(partitions=1)
    bootstrap = kafka.bootstrap_servers
    with run_receiver() as receiver:
        config = with_alerting(
            monitor_config(bootstrap, [topic], f"g-{topic}"),
            webhook_url=receiver.url + "/hook",
            webhook_secret=SECRET,
        )
        monitor = await start(config, "gw-a")
        try:
            await send_stamped(bootstrap, topic, 0, [0, 1, 3, 4, 7])

            async def both_confirmed() -> list[dict[str, Any]] | None:
                events = [
                    e
                    for r in receiver.received()
                    for e in r.json()["events"]
                    if e["kind"] == "confirmed"
                ]
                return events if len(events) == 2 else None

            events = await wait_until(both_confirmed, within=30.0)
        finally:
            await monitor.stop()
    for request in receiver.received():
        assert request.path == "/hook"
        assert verify_signature(request.body, request.headers.get("x-gapwatch-signature"), SECRET)
    assert sorted((e["gap"]["first_seq"], e["gap"]["last_seq"]) for e in events) == [(2, 2), (5, 6)]
    assert {e["gap"]["instance"] for e in events} == {"gw-a"}


async def read_gap_log(bootstrap: str, topic: str, group: str) -> dict[str, dict[str, Any]]:
    """The newest state of every gap of ``group`` in the gap log, read straight from Kafka."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        newest: dict[str, dict[str, Any]] = {}
        while await consumer.position(tp) < end:
            for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                change = decode_change(record.value)
                if change.group == group and change.gap is not None:
                    newest[change.gap.id] = change.to_json()["gap"]
        return newest
    finally:
        await consumer.stop()


async def test_dead_sinks_slow_nothing_and_lose_nothing_from_the_gap_log(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    """A hanging Alertmanager and a webhook answering 500: failures counted per sink, and
    every confirmed gap is in the gap log."""
    topic = await make_topic(partitions=2)
    bootstrap = kafka.bootstrap_servers
    group = f"g-{topic}"
    with run_receiver("hang") as hanging, run_receiver("fail") as failing:
        base = monitor_config(bootstrap, [topic], group)
        config = with_alerting(
            dataclasses.replace(base, gap_log=GapLogSettings(topic=f"__gapwatch_gaps_{group}")),
            alertmanager_urls=(hanging.url,),
            webhook_url=failing.url,
        )
        monitor = await start(config, "gw-a")
        try:
            text = await get(monitor, "/metrics")
            for sink in ("alertmanager", "webhook"):
                assert f'gapwatch_alert_failures_total{{sink="{sink}"}} 0.0' in text
            # 2 partitions x 100 gaps (every third sequence missing).
            seqs = [s for s in range(300) if s % 3 != 1]
            await asyncio.gather(*(send_stamped(bootstrap, topic, p, seqs) for p in range(2)))

            async def all_confirmed() -> list[dict[str, Any]] | None:
                gaps: list[dict[str, Any]] = (
                    await get(monitor, "/gaps", scope="local", state="confirmed", limit=1000)
                )["gaps"]
                return gaps if len(gaps) == 200 else None

            gaps = await wait_until(all_confirmed, within=60.0)
            partitions = (await get(monitor, "/streams"))["partitions"]
            assert sum(p["records"] for p in partitions) == 400

            async def failures_counted() -> str | None:
                text = await get(monitor, "/metrics")
                counts = [
                    metric_value(text, "gapwatch_alert_failures_total", sink=s)
                    for s in ("alertmanager", "webhook")
                ]
                return text if all(c > 0 for c in counts) else None

            text = await wait_until(failures_counted, within=30.0)
            assert metric_value(text, "gapwatch_alert_deliveries_total", sink="webhook") == 0
        finally:
            await monitor.stop()
    logged = await read_gap_log(bootstrap, f"__gapwatch_gaps_{group}", group)
    assert {g["id"] for g in gaps} <= set(logged)
    assert all(logged[g["id"]]["state"] == "confirmed" for g in gaps)
