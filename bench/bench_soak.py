"""Memory over time: ``gapwatch monitor`` under a steady stamped load for many minutes.

Starts its own 1-node ``KafkaCluster`` and a topic of ``--partitions`` partitions, then
runs the real commands as processes of their own: ``gapwatch monitor`` (its GC settings,
checkpoints, HTTP API, producer reports) and ``gapwatch loadgen`` sending ``--rate``
stamped records/s from 4 producer ids, a few of them dropped (``--drop``) so gaps are
found, stored and closed all along. Meanwhile this script scrapes ``/metrics`` and polls
``/gaps`` every few seconds, as Prometheus and a dashboard would, and samples the
monitor's RSS every ``--sample`` seconds.

The baseline is the first sample after ``--warmup`` (by default long enough for every
partition's truncation ring to fill: a partition's memory grows until then, by design).
The script prints RSS at the end against that baseline, the band (max - min) of every
sample after warm-up against the 5 % target, and the least-squares slope after warm-up
in MB per hour, so a slow leak shows even inside the band.

Gaps are kept by design, each holder up to its count limit, so RSS is flat only once every
holder is full (or with ``--drop 0``). ``--closed-gap-limit``, ``--gap-history-limit`` and
``--events-buffer`` hand the monitor smaller limits than its defaults so that they fill
during the warm-up; the script says when each fills at the expected gap rate, and at the
end how many gaps each holder kept (``/gaps?scope=local``, the fleet view's gauge).

``--tracemalloc DIR`` is a diagnosis, not a measurement: the monitor runs with Python's
tracemalloc on (slower, more memory) and dumps a snapshot into ``DIR`` at the end of the
warm-up and at the end; the script then prints the traced heap at both against RSS at
both, and what grew in between, by source line. Taking the first snapshot raises the
monitor's RSS by tens of MB for good (the allocator keeps the pages the dump used), so a
traced run's band and slope are also printed from the first sample after that dump.

Run: ``.venv/bin/python bench/bench_soak.py [--minutes 20] [--warmup 300]
[--partitions 12] [--rate 1500] [--drop 0.0005] [--sample 5] [--closed-gap-limit N]
[--gap-history-limit N] [--events-buffer N] [--tracemalloc DIR]`` (the run lasts
``--minutes`` plus about a minute of start-up and shutdown).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import signal
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

from bench_monitor import BROKER_JVM_OPTS

from gapwatch.core.config import TrackerConfig
from gapwatch.testing.kafka import JVM_OPTS_ENV, KafkaCluster

TOPIC = "soak"
PRODUCERS = 4
TARGET_BAND = 0.05  # RSS after warm-up stays within 5 %
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
GAPWATCH = Path(sys.executable).with_name("gapwatch")
SNAPSHOT_TIMEOUT_S = 300.0
TRACED_FRAMES = 8
# ``gapwatch`` with tracemalloc on, dumping a snapshot at each SIGUSR1 (--tracemalloc).
TRACED_MONITOR = """
import signal, sys, tracemalloc
from pathlib import Path
from gapwatch.cli import main
folder = Path(sys.argv.pop(1))
taken = 0
def dump(signum, frame):
    global taken
    taken += 1
    tracemalloc.take_snapshot().dump(str(folder / f"snapshot-{taken}.tmp"))
    (folder / f"snapshot-{taken}.tmp").rename(folder / f"snapshot-{taken}")
signal.signal(signal.SIGUSR1, dump)
sys.exit(main(sys.argv[1:]))
"""
URL_LINE = re.compile(rb"gapwatch monitor: (http://[^/\s]+)/gaps")
PAGE = 5000  # the API's largest /gaps page
# The monitor's gap holders whose count limits this script can set: option, monitor flag,
# how many entries one confirmed gap adds (the /events buffer holds changes: an opened
# and a confirmed one per gap).
LIMITS = (
    ("closed_gap_limit", "--closed-gap-limit", 1),
    ("gap_history_limit", "--gap-history-limit", 1),
    ("events_buffer", "--events-buffer", 2),
)


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` now."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def slope_per_hour(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of RSS over time, in bytes per hour."""
    if len(samples) < 2:
        return float("nan")
    times = [t for t, _ in samples]
    values = [float(v) for _, v in samples]
    return statistics.linear_regression(times, values).slope * 3600.0


def ring_fill_seconds(args: argparse.Namespace) -> float:
    """How long the load takes to fill every partition's truncation ring."""
    ring = TrackerConfig().ring_size
    return args.partitions * ring / args.rate


async def wait_url(monitor: asyncio.subprocess.Process) -> str:
    """The monitor's base URL, from the line it prints once started."""
    assert monitor.stdout is not None
    async with asyncio.timeout(START_TIMEOUT_S):
        while line := await monitor.stdout.readline():
            if found := URL_LINE.search(line):
                return found.group(1).decode()
    raise RuntimeError(f"gapwatch monitor exited (status {await monitor.wait()})")


def limit_flags(args: argparse.Namespace) -> list[str]:
    """The monitor flags of the limits given on this script's command line."""
    flags: list[str] = []
    for option, flag, _ in LIMITS:
        value = getattr(args, option)
        if value is not None:
            flags += [flag, str(value)]
    return flags


def fill_seconds(args: argparse.Namespace) -> dict[str, float]:
    """About when each limit given is full, at the expected gap rate (one gap per dropped
    record: drops are rare enough not to touch); gaps close only after the grace period."""
    gaps_per_s = args.rate * args.drop
    grace = TrackerConfig().grace_period
    return {
        option: grace + getattr(args, option) / (per_gap * gaps_per_s)
        for option, _, per_gap in LIMITS
        if getattr(args, option) is not None and gaps_per_s > 0
    }


def local_gaps(base: str) -> int:
    """How many gaps this instance's gap store holds, counted page by page."""
    count, cursor = 0, None
    while True:
        path = f"/gaps?scope=local&limit={PAGE}" + (f"&cursor={cursor}" if cursor else "")
        page = json.loads(get(base, path))
        count += len(page["gaps"])
        cursor = page["next_cursor"]
        if cursor is None:
            return count


def monitor_command(args: argparse.Namespace) -> list[str]:
    """``gapwatch``, or with ``--tracemalloc`` Python running it traced."""
    if args.tracemalloc is None:
        return [str(GAPWATCH)]
    args.tracemalloc.mkdir(parents=True, exist_ok=True)
    return [
        sys.executable,
        *["-X", f"tracemalloc={TRACED_FRAMES}", "-c", TRACED_MONITOR],
        str(args.tracemalloc),
    ]


async def snapshot(pid: int, folder: Path, number: int) -> None:
    """Have the traced monitor dump snapshot ``number`` and wait until it is written."""
    os.kill(pid, signal.SIGUSR1)
    path = folder / f"snapshot-{number}"
    for _ in range(int(SNAPSHOT_TIMEOUT_S)):
        if path.exists():
            return
        await asyncio.sleep(1.0)
    raise RuntimeError(f"the monitor wrote no {path.name} in {SNAPSHOT_TIMEOUT_S:.0f} s")


def traced_bytes(snapshot: tracemalloc.Snapshot) -> int:
    """Everything a tracemalloc snapshot holds, in bytes."""
    return sum(stat.size for stat in snapshot.statistics("filename"))


def print_growth(folder: Path, samples: list[tuple[float, int]], traced_from: float) -> None:
    """The traced heap at both snapshots against RSS at both, what grew between them by
    source line, then the largest changes by traceback."""
    first = tracemalloc.Snapshot.load(str(folder / "snapshot-1"))
    last = tracemalloc.Snapshot.load(str(folder / "snapshot-2"))
    heap_before, heap_after = traced_bytes(first), traced_bytes(last)
    rss_before = next((v for t, v in samples if t >= traced_from), samples[0][1])
    rss_after = samples[-1][1]
    print(
        f"traced heap {heap_before / 1e6:.2f} MB at the first snapshot, {heap_after / 1e6:.2f} MB "
        f"at the last ({(heap_after - heap_before) / 1e6:+.2f} MB); RSS "
        f"{rss_before / 1e6:.1f} MB just after the first, {rss_after / 1e6:.1f} MB at the last "
        f"sample ({(rss_after - rss_before) / 1e6:+.1f} MB)"
    )
    print("tracemalloc, end of warm-up -> end (the largest growth by line):")
    for stat in last.compare_to(first, "lineno")[:15]:
        print(f"  {stat}")
    for stat in last.compare_to(first, "traceback")[:3]:
        print(f"  {stat.size_diff / 1e3:+.1f} kB in {stat.count_diff:+d} blocks, allocated at:")
        for line in stat.traceback.format(most_recent_first=True)[: TRACED_FRAMES * 2]:
            print(f"    {line}")


def metric_sum(body: bytes, name: str) -> float:
    """The sum of every series of metric ``name`` in a ``/metrics`` body."""
    prefix = name.encode()
    total = 0.0
    for line in body.splitlines():
        if line.startswith(prefix) and line[len(prefix) : len(prefix) + 1] in (b"{", b" "):
            total += float(line.rsplit(b" ", 1)[1])
    return total


def get(base: str, path: str) -> bytes:
    """``GET base + path`` on a connection of its own: the server closes idle keep-alive
    connections after 5 s, about the sampling interval."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise RuntimeError(f"{path}: HTTP {response.status}")
    return body


async def observe(
    url: str, pid: int, args: argparse.Namespace, started: float
) -> tuple[list[tuple[float, int]], dict[str, float]]:
    """RSS samples ``(seconds since start, bytes)`` until ``--minutes`` are over, with
    ``/metrics`` and ``/gaps`` read between them; the median scrape time and the records
    and gaps counted by the last scrape."""
    samples: list[tuple[float, int]] = []
    scrapes: list[float] = []
    traced_from = float("nan")
    body = b""
    end = started + args.minutes * 60.0
    next_report = started + 60.0
    while (now := time.monotonic()) < end:
        samples.append((now - started, rss_bytes(pid)))
        warmed_up_now = len(samples) > 1 and samples[-2][0] < args.warmup <= samples[-1][0]
        if args.tracemalloc is not None and warmed_up_now:
            await snapshot(pid, args.tracemalloc, 1)
            traced_from = time.monotonic() - started
        before = time.perf_counter()
        body = await asyncio.to_thread(get, url, "/metrics")
        scrapes.append(time.perf_counter() - before)
        # What a dashboard polls, read and thrown away: its cost is part of the run.
        json.loads(await asyncio.to_thread(get, url, "/gaps?limit=100"))
        if now >= next_report:
            next_report += 60.0
            print(
                f"{time.strftime('%H:%M:%S')} {(now - started) / 60:.0f} min: "
                f"RSS {samples[-1][1] / 1e6:.1f} MB",
                file=sys.stderr,
                flush=True,
            )
        await asyncio.sleep(max(0.0, args.sample - (time.monotonic() - now)))
    if args.tracemalloc is not None:
        await snapshot(pid, args.tracemalloc, 2)
    return samples, {
        "scrape_median_s": statistics.median(scrapes) if scrapes else float("nan"),
        "records": metric_sum(body, "gapwatch_records_total"),
        "gaps": metric_sum(body, "gapwatch_gaps_total"),
        "fleet_gaps": metric_sum(body, "gapwatch_fleet_gaps"),
        "changes_read": metric_sum(body, "gapwatch_gap_log_read_total"),
        "local_gaps": await asyncio.to_thread(local_gaps, url),
        "traced_from": traced_from,
    }


async def stop(process: asyncio.subprocess.Process | None) -> None:
    """SIGTERM (a clean stop: final checkpoints), then SIGKILL if it does not exit."""
    if process is None or process.returncode is not None:
        return
    process.terminate()
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()


async def soak(bootstrap: str, args: argparse.Namespace) -> tuple[list[tuple[float, int]], float]:
    """Run the monitor and the load; the RSS samples and (traced runs) when the first
    snapshot was written, in seconds since the start (NaN untraced)."""
    monitor = load = None
    try:
        monitor = await asyncio.create_subprocess_exec(
            *monitor_command(args),
            *["monitor", "--bootstrap-servers", bootstrap, "--topic", TOPIC],
            *["--group-id", "soak", "--start-from", "earliest"],
            *["--http-host", "127.0.0.1", "--http-port", "0", "--checkpoint-interval", "10"],
            *limit_flags(args),
            stdout=asyncio.subprocess.PIPE,
            stderr=None if args.verbose else asyncio.subprocess.DEVNULL,
        )
        url = await wait_url(monitor)
        started = time.monotonic()
        load = await asyncio.create_subprocess_exec(
            *[str(GAPWATCH), "loadgen", "--bootstrap-servers", bootstrap, "--topic", TOPIC],
            *["--rate", str(args.rate), "--duration", str(args.minutes * 60.0 + 30.0)],
            *["--producers", str(PRODUCERS), "--drop", str(args.drop), "--value-size", "20"],
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        samples, seen = await observe(url, monitor.pid, args, started)
        if load.returncode is not None:
            raise RuntimeError(f"gapwatch loadgen ended early (status {load.returncode})")
        print(
            f"the monitor read {seen['records']:.0f} stamped records and confirmed "
            f"{seen['gaps']:.0f} gaps; /metrics median {seen['scrape_median_s'] * 1000:.1f} ms"
        )
        print(
            f"gaps kept at the end: {seen['local_gaps']:.0f} in the gap store, "
            f"{seen['fleet_gaps']:.0f} in the fleet view; {seen['changes_read']:.0f} gap "
            f"changes read back from the gap log (the /events buffer keeps the last "
            f"{args.events_buffer if args.events_buffer is not None else 'default'})"
        )
        return samples, seen["traced_from"]
    finally:
        await stop(load)
        await stop(monitor)


def report(samples: list[tuple[float, int]], args: argparse.Namespace) -> int:
    """Print the figures; 0 if RSS after warm-up stayed within the band."""
    after = [(t, v) for t, v in samples if t >= args.warmup]
    if len(after) < 2:
        print(f"no samples after the {args.warmup:.0f} s warm-up: run longer")
        return 1
    baseline = after[0][1]
    values = [v for _, v in after]
    band = (max(values) - min(values)) / baseline
    print(
        f"RSS: {samples[0][1] / 1e6:.1f} MB at start, {baseline / 1e6:.1f} MB after the "
        f"{args.warmup:.0f} s warm-up (the baseline), {values[-1] / 1e6:.1f} MB at the end "
        f"after {after[-1][0] / 60:.1f} min: ratio end / baseline {values[-1] / baseline:.3f}"
    )
    print(
        f"after warm-up ({len(after)} samples): min {min(values) / 1e6:.1f} MB, max "
        f"{max(values) / 1e6:.1f} MB, band {band * 100:.1f} % of the baseline "
        f"(target <= {TARGET_BAND * 100:.0f} %: {'met' if band <= TARGET_BAND else 'MISSED'}); "
        f"slope {slope_per_hour(after) / 1e6:+.1f} MB per hour"
    )
    return 0 if band <= TARGET_BAND else 1


def report_traced(samples: list[tuple[float, int]], traced_from: float) -> None:
    """Band and slope from the first sample after the first snapshot's dump, whose own
    allocation stays in the monitor's RSS (a step right after the baseline)."""
    after = [(t, v) for t, v in samples if t >= traced_from]
    if len(after) < 2:
        return
    values = [v for _, v in after]
    print(
        f"after the first snapshot ({len(after)} samples from {after[0][0]:.0f} s): "
        f"{values[0] / 1e6:.1f} MB to {values[-1] / 1e6:.1f} MB, min {min(values) / 1e6:.1f}, "
        f"max {max(values) / 1e6:.1f}, band {(max(values) - min(values)) / values[0] * 100:.1f} %; "
        f"slope {slope_per_hour(after) / 1e6:+.1f} MB per hour"
    )


async def main(args: argparse.Namespace) -> int:
    fill = ring_fill_seconds(args)
    print(
        f"{args.minutes:g} min at {args.rate:g} records/s over {args.partitions} partitions; "
        f"every ring is full after about {fill:.0f} s, warm-up {args.warmup:.0f} s",
        flush=True,
    )
    if fill > args.warmup:
        print("warning: the warm-up ends before the rings are full; RSS still grows by design")
    for option, seconds in fill_seconds(args).items():
        late = seconds > args.warmup
        print(
            f"{option} {getattr(args, option)} is full after about {seconds:.0f} s"
            + (": after the warm-up, so RSS still grows by design until then" if late else "")
        )
    print("monitor flags:", " ".join(limit_flags(args)) or "(defaults)", flush=True)
    os.environ.setdefault(JVM_OPTS_ENV, BROKER_JVM_OPTS)
    with KafkaCluster(nodes=1) as cluster:
        await cluster.create_topic(TOPIC, partitions=args.partitions, timeout_s=60)
        samples, traced_from = await soak(cluster.bootstrap_servers, args)
    status = report(samples, args)
    if args.tracemalloc is not None:
        report_traced(samples, traced_from)
        print_growth(args.tracemalloc, samples, traced_from)
    return status


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="length of the load")
    parser.add_argument("--warmup", type=float, default=300.0, help="seconds before the baseline")
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--rate", type=float, default=1500.0, help="records/s")
    parser.add_argument("--drop", type=float, default=0.0005, help="loadgen's drop probability")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    for option, flag, _ in LIMITS:
        parser.add_argument(flag, dest=option, type=int, help="the monitor's, if given")
    parser.add_argument(
        "--tracemalloc", type=Path, help="trace the monitor; snapshots in this folder"
    )
    parser.add_argument("--verbose", action="store_true", help="the monitor's log on stderr")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
