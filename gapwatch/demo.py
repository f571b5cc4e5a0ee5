"""``make demo``: gapwatch catching injected faults on a local Kafka, then left running.

1. Starts one local Kafka node (``KafkaCluster(nodes=1)``, jars from the cache).
2. Starts the monitor (``RunningMonitor``: 2 s grace, from earliest, producer reports on).
3. Runs ``gapwatch loadgen`` (a subprocess, the real CLI) over 3 partitions with 2 producer
   ids, dropping, duplicating and reordering about 1 % of records each.
4. Waits until the monitor has read every record and no gap is open, then prints the
   monitor's ``/gaps`` next to what the load generator injected, and one line saying
   whether they agree; then the durability audit's findings (``/topics``), which a
   one-node cluster and a non-idempotent load generator are bound to have, and why.
5. Leaves the monitor running with its URLs printed until Ctrl-C or SIGTERM, then stops
   the monitor (checkpoint, commit) and the cluster.

``--exit-after-check`` (or ``GAPWATCH_DEMO_EXIT=1``) stops after step 4: exit status 0 if
they agree, 1 if not, 2 if the demo itself failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import time
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from gapwatch.commands.agreement import Agreement, compare
from gapwatch.commands.gaptable import render_gaps, summarize
from gapwatch.kafka.canary.settings import CanarySettings
from gapwatch.kafka.settings import KafkaSettings
from gapwatch.monitor.app import RunningMonitor
from gapwatch.monitor.config import (
    HttpSettings,
    MonitorConfig,
    ReportSettings,
    TrackerSettings,
    WatchSettings,
)
from gapwatch.testing.kafka import KafkaCluster, KafkaTestbedError

TOPIC = "gapwatch-demo"
REPORT_TOPIC = "gapwatch-demo-reports"
PARTITIONS = 3
PREFERRED_PORT = 8571
SETTLE_TIMEOUT = 45.0
# Seed 7: the first drop or duplicate is record 106, after every stream's first record
# (a lost first record is a stream's baseline and cannot be seen, by design).
LOADGEN_ARGS = (
    "--count", "3000", "--rate", "1500", "--producers", "2", "--drop", "0.01",
    "--duplicate", "0.01", "--reorder", "0.01", "--seed", "7", "--report-interval", "0.5",
    "--producer-prefix", "demo",
)  # fmt: skip


def _port() -> int:
    """8571 if free (stable URLs for the newcomer), else any free port."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", PREFERRED_PORT))
        except OSError:
            return 0
    return PREFERRED_PORT


def _config(bootstrap: str) -> MonitorConfig:
    return MonitorConfig(
        kafka=KafkaSettings(bootstrap_servers=tuple(bootstrap.split(",")), fetch_max_wait_ms=100),
        watch=WatchSettings(topics=(TOPIC,), group_id="gapwatch-demo", start_from="earliest"),
        tracker=TrackerSettings(grace_period=2.0),
        reports=ReportSettings(enabled=True, topic=REPORT_TOPIC),
        http=HttpSettings(host="127.0.0.1", port=_port()),
        # A canary partition on the one broker: its availability is on /metrics.
        canary=CanarySettings(enabled=True),
    ).validate()


async def _loadgen(bootstrap: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "gapwatch", "loadgen", "--bootstrap-servers", bootstrap],
        *["--topic", TOPIC, "--report-topic", REPORT_TOPIC, *LOADGEN_ARGS],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    if process.returncode != 0:
        raise RuntimeError(f"gapwatch loadgen failed: {stderr.decode().strip()}")
    truth: dict[str, Any] = json.loads(stdout)
    return truth


async def _settled(monitor: RunningMonitor, http: httpx.AsyncClient, records: int) -> list[Any]:
    """The monitor's gaps once it read ``records`` records and nothing is open."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        gaps: list[Any] = (await http.get("/gaps", params={"limit": 5000})).json()["gaps"]
        read = sum(s.counters.records for s in monitor.partitions if s.topic == TOPIC)
        if read >= records and not any(g["state"] == "open" for g in gaps):
            return gaps
        if time.monotonic() > deadline:
            raise TimeoutError(f"the monitor read {read} of {records} records in time")
        await asyncio.sleep(0.25)


def _print_canary(monitor: RunningMonitor) -> None:
    """The canary's view of the one broker, and why its topic is less safe than production."""
    canary = monitor.canary
    if canary is None:
        return
    states = ", ".join(
        f"broker {b} {'available' if up else 'UNAVAILABLE'}"
        for b, up in canary.availability().items()
    )
    print(
        f"Canary ({canary.settings.topic}, {canary.settings.rate:g} records/s per broker): "
        f"{states}. One node: replication factor 1 and min.insync.replicas 1, so a disk "
        "loss here would lose acknowledged records; a real cluster gets 3 and 2."
    )


async def _wait_ready(http: httpx.AsyncClient) -> None:
    for _ in range(int(SETTLE_TIMEOUT / 0.2)):
        if (await http.get("/readyz")).status_code == 200:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("the monitor was not ready in time")


def _side_by_side(truth: dict[str, Any], agreement: Agreement) -> str:
    """One row per injected or found gap: what loadgen dropped next to what the monitor said."""
    rows = [["PART", "PRODUCER", "SEQS", "LOADGEN DROPPED", "MONITOR CONFIRMED"]]
    for run in sorted(agreement.expected.confirmed | agreement.found):
        partition, producer, first, last = run
        seqs = str(first) if first == last else f"{first}..{last}"
        rows.append(
            [
                str(partition),
                producer,
                seqs,
                "yes" if run in agreement.expected.confirmed else "-",
                "yes" if run in agreement.found else "-",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in rows]
    totals = truth["totals"]
    lines.append(
        f"loadgen: sent {truth['run']['records_sent']} records; dropped {totals['dropped']} "
        f"({agreement.expected.tail_dropped} at a stream's tail: unknown fate, not a gap), "
        f"duplicated {totals['duplicated']}, reordered {totals['reordered']}"
    )
    return "\n".join(lines)


# Why the demo's topic has the findings it has: a one-node cluster keeps one copy of every
# record, and the load generator runs without idempotence (its default).
_EXPECTED_IN_DEMO = {
    "rf_below_3": "one broker can hold one copy only",
    "min_isr_1": "with one copy, min.insync.replicas cannot be more than 1",
    "min_isr_not_below_rf": "one copy and min ISR 1: that broker down stops writes",
    "producer_not_idempotent": "gapwatch loadgen runs without --idempotent here",
}


async def _watch_durability(http: httpx.AsyncClient, until: asyncio.Future[Any]) -> str:
    """The durability findings of the demo topic seen while ``until`` runs (producer findings
    hold only while the load generator writes: its final reports end them), as lines, each
    with why it is expected on this demo."""
    seen: dict[str, str] = {}
    error = "still reading the topic settings"
    while True:
        body: dict[str, Any] = (await http.get("/topics")).json()
        error = body["error"] or error
        for topic in body["topics"]:
            for finding in topic["findings"]:
                seen.setdefault(finding["name"], finding["detail"])
        if until.done():
            break
        await asyncio.wait({until}, timeout=0.2)
    if body["audited_at"] is None:
        return f"  (no audit yet: {error})"
    if not seen:
        return "  no findings"
    lines = [
        f"  {name:<24} {detail}  [{_EXPECTED_IN_DEMO.get(name, 'not expected in the demo')}]"
        for name, detail in seen.items()
    ]
    lines.append(
        "  A production topic wants replication factor 3, min.insync.replicas=2, unclean "
        "election off\n  and producers with acks=all and idempotence "
        "(docs/operations.md#durability-audit)."
    )
    return "\n".join(lines)


def _verdict(agreement: Agreement, duplicates: int, late: int) -> bool:
    expected = agreement.expected
    counts_agree = duplicates == expected.duplicated and late == len(expected.reordered)
    if agreement.agrees and counts_agree and not expected.invisible:
        print(
            f"AGREE: the monitor confirmed exactly the {len(expected.confirmed)} injected gaps "
            f"({expected.missing} lost records), counted {duplicates} duplicates, and the "
            f"{late} reordered records healed their gaps instead of being confirmed."
        )
        return True
    print(
        f"DISAGREE: missed {sorted(agreement.missed)}, false {sorted(agreement.false)}, "
        f"wrongly healed {sorted(agreement.healed_wrongly)}; duplicates {duplicates} vs "
        f"{expected.duplicated} injected, late {late} vs {len(expected.reordered)} reordered"
        + (
            f"; {expected.invisible} first records were faulted (invisible)"
            if expected.invisible
            else ""
        )
    )
    return False


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _demo(cluster: KafkaCluster, *, exit_after_check: bool) -> int:
    bootstrap = cluster.bootstrap_servers
    await cluster.create_topic(TOPIC, partitions=PARTITIONS)
    await cluster.create_topic(REPORT_TOPIC, configs={"cleanup.policy": "compact,delete"})
    monitor = RunningMonitor(_config(bootstrap), registry=CollectorRegistry())
    await monitor.start()
    base = f"http://127.0.0.1:{monitor.http_port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10.0) as http:
            await _wait_ready(http)
            print(f"Monitor ready at {base}; running gapwatch loadgen {' '.join(LOADGEN_ARGS)}")
            loadgen = asyncio.ensure_future(_loadgen(bootstrap))
            try:
                durability = await _watch_durability(http, loadgen)
            except httpx.HTTPError as error:
                durability = f"  (not shown: {error!r})"
            truth = await loadgen
            records = sum(stream["sent"] for stream in truth["streams"])
            gaps = await _settled(monitor, http, records)
        agreement = compare(truth, gaps)
        counters = [state.counters for state in monitor.partitions if state.topic == TOPIC]
        duplicates = sum(c.duplicates for c in counters)
        late = sum(c.late for c in counters)
        shown = [g for g in gaps if g["state"] == "confirmed"]
        print("\nThe monitor's confirmed gaps (GET /gaps, as `gapwatch gaps` prints them):")
        print(
            render_gaps(
                sorted(shown, key=lambda g: (g["partition"], g["producer"], g["first_seq"]))
            )
        )
        print(summarize(gaps))
        print("\nInjected by loadgen next to confirmed by the monitor:")
        print(_side_by_side(truth, agreement))
        print()
        is_agreed = _verdict(agreement, duplicates, late)
        print("\nDurability audit of the demo topic (GET /topics), risks before any loss:")
        print(durability)
        _print_canary(monitor)
        if exit_after_check:
            return 0 if is_agreed else 1
        print(f"\nThe monitor keeps running:\n  gaps     {base}/gaps\n  metrics  {base}/metrics")
        print(f"  topics   {base}/topics")
        print(f"  API docs {base}/docs\n  CLI      gapwatch gaps --url {base}")
        print(f"Kafka: {bootstrap}. Press Ctrl-C to stop.", flush=True)
        await _wait_for_signal()
        print("Stopping the monitor and Kafka...")
        return 0 if is_agreed else 1
    finally:
        await monitor.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the demo; see the module docstring for the exit status."""
    parser = argparse.ArgumentParser(prog="python -m gapwatch.demo", description=__doc__)
    parser.add_argument(
        "--exit-after-check",
        action="store_true",
        default=os.environ.get("GAPWATCH_DEMO_EXIT", "") in ("1", "true", "yes"),
        help="stop after printing the comparison (also GAPWATCH_DEMO_EXIT=1)",
    )
    args = parser.parse_args(argv)
    # SIGTERM before the event loop runs (while Kafka starts) must still stop the cluster.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print("Starting a local Kafka node...", flush=True)
    try:
        with KafkaCluster(nodes=1) as cluster:
            return asyncio.run(_demo(cluster, exit_after_check=args.exit_after_check))
    except KafkaTestbedError as error:
        print(f"demo: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted; Kafka stopped.")
        return 130
    except Exception as error:
        print(f"demo failed: {error!r}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
