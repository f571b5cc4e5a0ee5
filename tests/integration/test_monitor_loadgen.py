"""`gapwatch loadgen` injects faults; the monitor, `gapwatch audit` and /metrics agree with
its truth exactly."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections import Counter
from typing import Any

import httpx
import pytest
from monitor_support import get_json, metric_value, monitor_config, start_monitor, wait_until

from gapwatch.cli import main
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.kafka

Run = tuple[int, str, int, int]  # partition, producer, first_seq, last_seq


def dropped_runs(truth: dict[str, Any]) -> tuple[set[Run], Counter[int], Counter[int]]:
    """What sequence tracking must confirm: runs of dropped sequences with an earlier and
    a later record in their stream; and per partition the number of those records and of
    tail drops (no later record: only the producer's final report can tell, as unknown
    fate). Drops before a stream's first record are invisible by design: the first
    record seen is the baseline (rule R2; the monitor cannot know what came before)."""
    runs: set[Run] = set()
    missing: Counter[int] = Counter()
    tail: Counter[int] = Counter()
    for stream in truth["streams"]:
        dropped = set(stream["dropped"])
        sent = [s for s in range(stream["last_seq"] + 1) if s not in dropped]
        inner = sorted(s for s in dropped if min(sent) < s < max(sent))
        tail[stream["partition"]] += len(dropped) - len(inner)
        missing[stream["partition"]] += len(inner)
        start = None
        for i, seq in enumerate(inner):
            if start is None:
                start = seq
            if i + 1 == len(inner) or inner[i + 1] != seq + 1:
                runs.add((stream["partition"], stream["producer"], start, seq))
                start = None
    return runs, missing, tail


def runs_in(gaps: list[dict[str, Any]], state: str) -> set[Run]:
    return {
        (g["partition"], g["producer"], g["first_seq"], g["last_seq"])
        for g in gaps
        if g["state"] == state
    }


async def run_loadgen(
    bootstrap: str,
    topic: str,
    report_topic: str,
    seed: int,
    *,
    count: int = 3000,
    faults: tuple[float, float, float] = (0.01, 0.01, 0.01),
) -> dict[str, Any]:
    drop, duplicate, reorder = (str(p) for p in faults)
    argv = [
        sys.executable, "-m", "gapwatch", "loadgen", "--bootstrap-servers", bootstrap,
        "--topic", topic, "--count", str(count), "--rate", "1500", "--producers", "2",
        "--drop", drop, "--duplicate", duplicate, "--reorder", reorder, "--seed", str(seed),
        "--report-topic", report_topic, "--report-interval", "0.5", "--producer-prefix", "lg",
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, stderr.decode()
    truth: dict[str, Any] = json.loads(stdout)
    return truth


@pytest.mark.parametrize("seed", [7, 11, 23])
async def test_monitor_audit_and_metrics_agree_with_injected_truth(
    kafka: KafkaCluster, make_topic: MakeTopic, capsys: pytest.CaptureFixture[str], seed: int
) -> None:
    """Drops across 3 partitions and 2 producers are confirmed exactly (runs and counts),
    reordered records heal their gaps instead of being confirmed, duplicates are counted
    once each (a stream's duplicated or reordered first record included: it keeps its
    CreateTime, so it is not a reset), tail drops are unknown fate; audit finds the same
    gaps."""
    topic = await make_topic(partitions=3)
    report_topic = f"{topic}-reports"
    await kafka.create_topic(report_topic, configs={"cleanup.policy": "compact,delete"})
    bootstrap = kafka.bootstrap_servers
    config = monitor_config(bootstrap, [topic], f"g-{topic}", grace_period=1.0)
    config = dataclasses.replace(
        config, reports=dataclasses.replace(config.reports, enabled=True, topic=report_topic)
    )
    monitor = await start_monitor(config)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{monitor.http_port}") as http:

            async def ready() -> bool:
                return (await http.get("/readyz")).status_code == 200

            await wait_until(ready)
            truth = await run_loadgen(bootstrap, topic, report_topic, seed)
            streams = truth["streams"]
            # Every seed gives every kind of fault, on every partition and both producers.
            # Partitions are chosen at random per run, faults by the seed, so whether a
            # stream's first record is dropped, duplicated or reordered varies per run.
            assert truth["totals"]["failed"] == 0
            assert {s["partition"] for s in streams} == {0, 1, 2}
            assert {s["producer"] for s in streams} == {"lg-0", "lg-1"}
            expected, missing, tail = dropped_runs(truth)
            assert len(expected) >= 5
            assert truth["totals"]["duplicated"] >= 5
            assert truth["totals"]["reordered"] >= 5
            records = sum(s["sent"] for s in streams)

            async def settled() -> list[dict[str, Any]] | None:
                gaps: list[dict[str, Any]] = (await get_json(monitor, "/gaps", limit=1000))["gaps"]
                text = (await http.get("/metrics")).text
                seen = sum(
                    metric_value(text, "gapwatch_records_total", topic=topic, partition=str(p))
                    for p in range(3)
                )
                is_open = any(g["state"] == "open" for g in gaps)
                return (
                    gaps if seen == records and not is_open and runs_in(gaps, "confirmed") else None
                )

            gaps = await wait_until(settled, within=60.0)
            text = (await http.get("/metrics")).text
    finally:
        await monitor.stop()

    assert runs_in(gaps, "confirmed") == expected
    reordered = {(s["partition"], s["producer"], q) for s in streams for q in s["reordered"]}
    healed = runs_in(gaps, "healed")
    assert healed, "reordered records should have opened gaps that healed"
    # Every healed gap was made of reordered records only; no reordered record is counted
    # in a confirmed gap.
    for partition, producer, first, last in healed:
        assert all((partition, producer, q) in reordered for q in range(first, last + 1))
    for partition, producer, first, last in runs_in(gaps, "confirmed"):
        assert not any((partition, producer, q) in reordered for q in range(first, last + 1))

    def by_partition(key: str) -> Counter[int]:
        counts: Counter[int] = Counter()
        for s in streams:
            counts[s["partition"]] += len(s[key])
        return counts

    duplicated, late = by_partition("duplicated"), by_partition("reordered")
    for p in range(3):
        labels = {"topic": topic, "partition": str(p)}
        assert metric_value(text, "gapwatch_missing_records_total", **labels) == missing[p]
        assert metric_value(text, "gapwatch_gaps_total", **labels) == sum(
            1 for run in expected if run[0] == p
        )
        assert metric_value(text, "gapwatch_duplicate_records_total", **labels) == duplicated[p]
        assert metric_value(text, "gapwatch_late_records_total", **labels) == late[p]
        assert metric_value(text, "gapwatch_unknown_fate_records_total", **labels) == tail[p]
        assert metric_value(text, "gapwatch_open_gaps", **labels) == 0

    argv = ["audit", "--bootstrap-servers", bootstrap, "--topic", topic, "--json"]
    code = await asyncio.to_thread(main, argv)
    audit = json.loads(capsys.readouterr().out)
    assert code == 1
    assert runs_in(audit["gaps"], "confirmed") == expected
    assert runs_in(audit["gaps"], "healed") == healed
    for p in range(3):
        counters = audit["counters"][str(p)]
        assert counters["missing"] == missing[p]
        assert counters["duplicates"] == duplicated[p]
        assert counters["late"] == late[p]


async def test_duplicated_and_reordered_first_records_are_not_resets(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    """With most records duplicated or reordered, streams' first records are too: each
    copy is one duplicate and each early record one late record, never a sequence reset
    or a gap (both copies of a record carry its CreateTime, as a client retry does)."""
    topic = await make_topic(partitions=3)
    report_topic = f"{topic}-reports"
    await kafka.create_topic(report_topic, configs={"cleanup.policy": "compact,delete"})
    bootstrap = kafka.bootstrap_servers
    monitor = await start_monitor(monitor_config(bootstrap, [topic], f"g-{topic}"))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{monitor.http_port}") as http:

            async def ready() -> bool:
                return (await http.get("/readyz")).status_code == 200

            await wait_until(ready)
            truth = await run_loadgen(
                bootstrap, topic, report_topic, 5, count=120, faults=(0.0, 0.4, 0.4)
            )
            streams = truth["streams"]
            firsts = [s for s in streams if 0 in s["duplicated"] or 0 in s["reordered"]]
            assert firsts, "no stream's first record was faulted; the test proves nothing"
            records = sum(s["sent"] for s in streams)

            async def settled() -> str | None:
                text = (await http.get("/metrics")).text
                seen = sum(
                    metric_value(text, "gapwatch_records_total", topic=topic, partition=str(p))
                    for p in range(3)
                )
                is_open = any(
                    metric_value(text, "gapwatch_open_gaps", topic=topic, partition=str(p))
                    for p in range(3)
                )
                return text if seen == records and not is_open else None

            text = await wait_until(settled, within=60.0)
            await asyncio.sleep(1.5)  # past the 1 s grace: a false gap would be confirmed
            gaps = (await get_json(monitor, "/gaps", scope="local", limit=1000))["gaps"]
            text = (await http.get("/metrics")).text
    finally:
        await monitor.stop()
    assert runs_in(gaps, "confirmed") == set()
    for p in range(3):
        labels = {"topic": topic, "partition": str(p)}
        mine = [s for s in streams if s["partition"] == p]
        assert metric_value(text, "gapwatch_sequence_resets_total", **labels) == 0
        assert metric_value(text, "gapwatch_duplicate_records_total", **labels) == sum(
            len(s["duplicated"]) for s in mine
        )
        assert metric_value(text, "gapwatch_late_records_total", **labels) == sum(
            len(s["reordered"]) for s in mine
        )
