"""Issue 14's proof: a monitor on MirrorMaker 2 copies says where each loss happened.

Two real test-bed clusters (``kafka`` is the source, ``mirror_target`` the target) and a
real MirrorMaker 2 between them (``make_mirror``), stopped, killed, made to forget its
offsets and raced by retention, while gapwatch monitors watch the copy (and, in the last
test, the source). MirrorMaker's own start and stop block; they run in a thread here, so
the monitors on this event loop keep consuming and heartbeating meanwhile.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mirror_support import (
    metrics_text,
    mirror_config,
    mirror_metric,
    origins_by_range,
    read_stamp_counts,
    wait_for_origins,
)
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
from gapwatch.monitor.config import AlertingSettings, MonitorConfig
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.mirror import Mirror
from gapwatch.testing.pytest_plugin import MakeMirror, MakeTopic
from gapwatch.testing.receiver import Receiver, run_receiver

pytestmark = pytest.mark.kafka

# Where the scenarios write the /gaps documents docs/mirroring.md quotes, when set.
CAPTURE_ENV = "GAPWATCH_MIRROR_CAPTURE"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP receiver on loopback, for the monitor's webhook and Alertmanager sinks."""
    with run_receiver() as running:
        yield running


def _capture(name: str, value: Any) -> None:
    directory = os.environ.get(CAPTURE_ENV)
    if directory:
        Path(directory, f"{name}.json").write_text(json.dumps(value, indent=2) + "\n")


def _escaped(topic: str) -> str:
    """``topic`` as a Java regular expression matching only itself."""
    return topic.replace(".", r"\.")


async def _restart(mirror: Mirror, *, offset_reset: str | None = None) -> None:
    """Start a stopped MirrorMaker and wait until it copies, without blocking the loop."""
    mirror.launch(offset_reset=offset_reset)
    await mirror.wait_copying()


async def _stop(mirror: Mirror) -> None:
    """SIGTERM MirrorMaker and wait for it to store its offsets and exit (in a thread)."""
    assert await asyncio.to_thread(mirror.stop)


def _config(
    target: KafkaCluster, topic: str, group: str, mirror: Mirror, kafka: KafkaCluster
) -> MonitorConfig:
    """A monitor of ``topic`` on the target that knows ``mirror``'s source."""
    return mirror_config(
        target.bootstrap_servers,
        [topic],
        group,
        sources={mirror.settings.source_alias: kafka.bootstrap_servers},
    )


async def _wait_lookups_done(monitor: RunningMonitor) -> None:
    async def idle() -> bool:
        return await mirror_metric(monitor, "gapwatch_mirror_lookups_pending") == 0

    await wait_until(idle, within=60)


async def _wait_read_to_end(monitor: RunningMonitor, ends: dict[int, int]) -> None:
    async def read_all() -> bool:
        parts = (await get_json(monitor, "/streams"))["partitions"]
        return {p["partition"]: p["position"] for p in parts} == ends

    await wait_until(read_all, within=90)


async def _longer_than(measure: Callable[[], Awaitable[float | None]], before: float) -> bool:
    now = await measure()
    return now is not None and now > before


def _all_but(seqs: Iterable[int], *missing: range) -> list[int]:
    return [s for s in seqs if not any(s in r for r in missing)]


async def test_healthy_mirror_through_stop_start_and_sigkill_loses_nothing(
    kafka: KafkaCluster,
    mirror_target: KafkaCluster,
    make_topic: MakeTopic,
    make_mirror: MakeMirror,
) -> None:
    """Proof 1: stopped and restarted, then SIGKILLed with offsets last stored long ago,
    MirrorMaker copies every record; the records it copied twice are counted as mirror
    duplicates, exactly as many as the target log holds, and nothing is lost."""
    source = await make_topic(partitions=2)
    # Offsets are stored on a clean stop, otherwise only every 10 minutes: a SIGKILL then
    # makes MirrorMaker copy again everything since the last clean stop.
    mirror = make_mirror(_escaped(source), offset_flush_interval_ms=600_000)
    target = mirror.remote_topic(source)
    bootstrap = kafka.bootstrap_servers
    for partition in (0, 1):
        await send_stamped(bootstrap, source, partition, range(0, 100))
    await mirror.wait_caught_up(source)
    monitor = await start_monitor(_config(mirror_target, target, f"g-{target}", mirror, kafka))
    try:
        await _stop(mirror)
        for partition in (0, 1):
            await send_stamped(bootstrap, source, partition, range(100, 200))
        await _restart(mirror)
        await mirror.wait_caught_up(source)
        for partition in (0, 1):
            await send_stamped(bootstrap, source, partition, range(200, 300))
        await mirror.wait_caught_up(source)
        assert mirror.kill()
        for partition in (0, 1):
            await send_stamped(bootstrap, source, partition, range(300, 400))
        await _restart(mirror)
        await mirror.wait_caught_up(source)

        on_target = {
            p: await read_stamp_counts(mirror_target.bootstrap_servers, target, p) for p in (0, 1)
        }
        on_source = {p: await read_stamp_counts(bootstrap, source, p) for p in (0, 1)}
        copies = {p: sum(on_target[p].values()) for p in (0, 1)}
        await _wait_read_to_end(monitor, copies)
        await _wait_lookups_done(monitor)
        alias = mirror.settings.source_alias
        expected: dict[int, list[float]] = {}
        for p in (0, 1):
            assert set(on_target[p]) == set(on_source[p])  # every record arrived
            assert all(n == 1 for n in on_source[p].values())
            expected[p] = [sum(n - 1 for n in on_target[p].values()), 0, 0]

        async def duplicates_split() -> dict[int, list[float]] | None:
            text = await metrics_text(monitor)
            found = {
                p: [
                    metric_value(
                        text,
                        "gapwatch_mirror_duplicate_records_total",
                        topic=target,
                        partition=str(p),
                        source_cluster=alias,
                        made_by=made_by,
                    )
                    for made_by in ("mirror", "source", "unknown")
                ]
                for p in (0, 1)
            }
            return found if found == expected else None

        await wait_until(duplicates_split, within=60)
        text = await metrics_text(monitor)
        for p in (0, 1):
            labels = {"topic": target, "partition": str(p)}
            assert (
                metric_value(text, "gapwatch_duplicate_records_total", **labels) == expected[p][0]
            )
            assert metric_value(text, "gapwatch_missing_records_total", **labels) == 0
            for origin in ("mirror", "source", "unknown"):
                series = {**labels, "source_cluster": alias, "origin": origin}
                assert metric_value(text, "gapwatch_mirror_missing_records_total", **series) == 0
        total_duplicates = expected[0][0] + expected[1][0]
        assert total_duplicates > 0, "the SIGKILL made MirrorMaker copy nothing twice"
        gaps = (await get_json(monitor, "/gaps", topic=target, limit=1000))["gaps"]
        assert [g for g in gaps if g["state"] != "healed"] == []
        lag = 'gapwatch_mirror_lag_records{partition="0",source_cluster="%s",topic="%s"} 0.0'

        async def caught_up() -> bool:
            line = lag % (mirror.settings.source_alias, target)
            return line in (await metrics_text(monitor)).splitlines()

        await wait_until(caught_up)
        mirror_lines = [
            line
            for line in (await metrics_text(monitor)).splitlines()
            if line.startswith("gapwatch_mirror_") and 'partition="0"' in line
        ]
        _capture("metrics-healthy", mirror_lines)
    finally:
        await monitor.stop()


async def test_upstream_loss_is_origin_source_and_survives_restart_and_rebalance(
    kafka: KafkaCluster,
    mirror_target: KafkaCluster,
    make_topic: MakeTopic,
    make_mirror: MakeMirror,
) -> None:
    """Proofs 2 and 5: records stamped at the source producer and never sent are gaps of
    origin source on the copy, exactly those sequences, which a monitor of the source
    confirms too; the copy's monitor keeps the origins across its restart and while a
    second instance joins and leaves its group, and counts each loss once."""
    source = await make_topic(partitions=2)
    mirror = make_mirror(_escaped(source))
    target = mirror.remote_topic(source)
    bootstrap = kafka.bootstrap_servers
    await send_stamped(bootstrap, source, 0, _all_but(range(60), range(10, 13)))
    await send_stamped(bootstrap, source, 1, _all_but(range(60), range(30, 32)))
    await mirror.wait_caught_up(source)
    alias = mirror.settings.source_alias
    expected = {(0, 10, 12): "source", (1, 30, 31): "source"}

    config = _config(mirror_target, target, f"g-{target}", mirror, kafka)
    first = await start_monitor(config)
    on_source = await start_monitor(monitor_config(bootstrap, [source], f"g-{source}"))
    try:
        gaps = await wait_for_origins(first, target, 2)
        assert origins_by_range(gaps) == expected
        assert {(g["source_cluster"], g["source_topic"]) for g in gaps} == {(alias, source)}
        assert all(g["origin_reason"].startswith("not-in-source: ") for g in gaps)
        _capture("gaps-origin-source", gaps)
        for partition, count in ((0, 3), (1, 2)):
            labels = {"topic": target, "partition": str(partition), "source_cluster": alias}
            assert (
                await mirror_metric(
                    first, "gapwatch_mirror_missing_records_total", origin="source", **labels
                )
                == count
            )

        async def confirmed_on_source() -> list[dict[str, Any]] | None:
            found = (await get_json(on_source, "/gaps", topic=source))["gaps"]
            return found if len(gap_ranges(found, "confirmed")) == 2 else None

        source_gaps = await wait_until(confirmed_on_source)

        def streams(found: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
            return {
                (
                    g["partition"],
                    g["producer"],
                    g["epoch"],
                    g["first_seq"],
                    g["last_seq"],
                    g["count"],
                )
                for g in found
                if g["state"] == "confirmed"
            }

        assert streams(source_gaps) == streams(gaps)
    finally:
        await on_source.stop()
        await first.stop()

    # Restart: the gaps come back from the gap log and their origins are decided again.
    second = await start_monitor(config)
    joined: RunningMonitor | None = None
    try:
        again = await wait_for_origins(second, target, 2)
        assert origins_by_range(again) == expected
        assert {g["id"] for g in again} == {g["id"] for g in gaps}
        labels = {"topic": target, "partition": "0", "source_cluster": alias}
        # Confirmed by the instance before the restart: counted there, not again here.
        assert (
            await mirror_metric(
                second, "gapwatch_mirror_missing_records_total", origin="source", **labels
            )
            == 0
        )

        # A second instance joins the group: each owns one partition, both show origins.
        joined = await start_monitor(config)

        async def split_between_both() -> bool:
            owned = [len((await get_json(m, "/streams"))["partitions"]) for m in (second, joined)]
            return owned == [1, 1]

        await wait_until(split_between_both, within=90)
        for monitor in (second, joined):
            assert origins_by_range(await wait_for_origins(monitor, target, 2)) == expected
        await joined.stop()
        joined = None

        async def owns_both() -> bool:
            return len((await get_json(second, "/streams"))["partitions"]) == 2

        await wait_until(owns_both, within=90)
        after = await wait_for_origins(second, target, 2)
        assert origins_by_range(after) == expected
        _capture("gaps-after-restart-and-rebalance", after)
    finally:
        if joined is not None:
            await joined.stop()
        await second.stop()


async def test_records_mirrormaker_skipped_are_origin_mirror(
    kafka: KafkaCluster,
    mirror_target: KafkaCluster,
    make_topic: MakeTopic,
    make_mirror: MakeMirror,
    receiver: Receiver,
) -> None:
    """Proof 3: MirrorMaker stopped, records written, its stored offsets deleted and it
    restarted at ``latest``: those records are on the source and never reach the copy.
    The webhook and Alertmanager sinks (a real HTTP receiver) push the loss with origin
    pending, then its decided origin at once."""
    source = await make_topic(partitions=1)
    mirror = make_mirror(_escaped(source))
    target = mirror.remote_topic(source)
    bootstrap = kafka.bootstrap_servers
    await send_stamped(bootstrap, source, 0, range(50))
    await mirror.wait_caught_up(source)
    config = _config(mirror_target, target, f"g-{target}", mirror, kafka)
    # A repost interval far beyond the test: the decided origin must not wait for it.
    alerting = AlertingSettings(
        webhook_url=f"{receiver.url}/hook",
        alertmanager_urls=(receiver.url,),
        repost_interval=300.0,
    )
    monitor = await start_monitor(dataclasses.replace(config, alerting=alerting))
    try:
        await _stop(mirror)
        await send_stamped(bootstrap, source, 0, range(50, 80))
        labels = {"topic": target, "partition": "0", "source_cluster": mirror.settings.source_alias}

        async def stalled() -> float | None:
            """While MirrorMaker is down: 30 records wait, and the oldest waits longer."""
            records = await mirror_metric(monitor, "gapwatch_mirror_lag_records", **labels)
            waited = await mirror_metric(monitor, "gapwatch_mirror_lag_seconds", **labels)
            return waited if records == 30 and waited > 0 else None

        first_wait = await wait_until(stalled)
        assert await wait_until(lambda: _longer_than(stalled, first_wait), within=30), (
            "lag_seconds did not grow while the mirror stood still"
        )
        assert await mirror.forget()
        await _restart(mirror, offset_reset="latest")
        await send_stamped(bootstrap, source, 0, range(80, 120))
        await mirror.wait_caught_up(source)

        (gap,) = await wait_for_origins(monitor, target, 1)
        assert (gap["first_seq"], gap["last_seq"], gap["count"]) == (50, 79, 30)
        assert gap["origin"] == "mirror"
        assert gap["origin_reason"].startswith("in-source: all 30 missing sequences 50..79")
        _capture("gaps-origin-mirror", [gap])
        assert (
            await mirror_metric(
                monitor, "gapwatch_mirror_missing_records_total", origin="mirror", **labels
            )
            == 30
        )
        await _assert_sinks_pushed_the_origin(receiver, gap)
    finally:
        await monitor.stop()


async def _assert_sinks_pushed_the_origin(receiver: Receiver, gap: dict[str, Any]) -> None:
    """The webhook got the loss with origin pending, then one ``origin`` event with the
    decision; Alertmanager's latest post of the gap's alert names the origin, well before
    the 300 s re-post, under the same labels."""
    expected = (gap["origin"], gap["origin_reason"], gap["source_cluster"], gap["source_topic"])

    def fields(body: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(body[k] for k in ("origin", "origin_reason", "source_cluster", "source_topic"))

    def webhook_events() -> list[dict[str, Any]]:
        return [
            event
            for request in receiver.received()
            if request.path == "/hook"
            for event in request.json()["events"]
            if event.get("gap", {}).get("id") == gap["id"]
        ]

    def pushed_alerts() -> list[dict[str, Any]]:
        return [
            alert
            for request in receiver.received()
            if request.path == "/api/v2/alerts"
            for alert in request.json()
            if alert["labels"].get("gap_id") == gap["id"]
        ]

    async def both_pushed() -> bool:
        kinds = [e["kind"] for e in webhook_events()]
        alerts = pushed_alerts()
        return kinds == ["confirmed", "origin"] and bool(
            alerts and alerts[-1]["annotations"]["origin"] == gap["origin"]
        )

    await wait_until(both_pushed, within=30)
    confirmed, decided = webhook_events()
    assert fields(confirmed["gap"])[0] == "pending"
    assert fields(confirmed["gap"])[2:] == expected[2:]
    assert fields(decided["gap"]) == expected
    _capture("webhook-origin-mirror", decided)
    alerts = pushed_alerts()
    # The first post may already carry the decision (it waits a moment to gather a burst,
    # and the lookup is quick); either way the decision arrives long before a re-post.
    assert {a["annotations"]["origin"] for a in alerts} <= {"pending", gap["origin"]}
    annotations = alerts[-1]["annotations"]
    assert fields(annotations) == expected
    assert annotations["summary"].endswith(f", origin {gap['origin']}")
    assert len({json.dumps(a["labels"], sort_keys=True) for a in alerts}) == 1


async def test_a_range_retention_deleted_before_it_was_copied_is_unknown(
    kafka: KafkaCluster,
    mirror_target: KafkaCluster,
    make_topic: MakeTopic,
    make_mirror: MakeMirror,
) -> None:
    """Proof 4, the retention race: MirrorMaker stopped, records written, the source's log
    start moved past them, MirrorMaker restarted (its stored offset is gone, it resets to
    earliest): the copy's gap is exact and its origin unknown, by retention."""
    source = await make_topic(partitions=1)
    mirror = make_mirror(_escaped(source))
    target = mirror.remote_topic(source)
    bootstrap = kafka.bootstrap_servers
    await send_stamped(bootstrap, source, 0, range(50))
    await mirror.wait_caught_up(source)
    monitor = await start_monitor(_config(mirror_target, target, f"g-{target}", mirror, kafka))
    try:
        await _stop(mirror)
        await send_stamped(bootstrap, source, 0, range(50, 80))
        assert await mirror.delete_source_records(source, 0, before=80) == 80
        await _restart(mirror)
        await send_stamped(bootstrap, source, 0, range(80, 120))
        await mirror.wait_caught_up(source)

        (gap,) = await wait_for_origins(monitor, target, 1)
        assert (gap["first_seq"], gap["last_seq"], gap["count"]) == (50, 79, 30)
        assert gap["origin"] == "unknown"
        assert gap["origin_reason"].startswith("retention: the source log now starts at offset 80")
        _capture("gaps-origin-unknown", [gap])
        labels = {"topic": target, "partition": "0", "source_cluster": mirror.settings.source_alias}
        assert (
            await mirror_metric(
                monitor, "gapwatch_mirror_missing_records_total", origin="unknown", **labels
            )
            == 30
        )
    finally:
        await monitor.stop()
