"""The monitor's throughput, detection latency and /metrics cost, on one broker, in one run.

Starts its own 1-node ``KafkaCluster`` and measures, in this order:

1. **Throughput.** One topic (12 partitions) is prefilled with ``--records`` stamped
   records of 100 bytes from 4 producer ids (``encode_stamp``). Then, in alternating
   rounds, a bare aiokafka ``getmany`` loop that only counts records and the monitor
   (``RunningMonitor``, fresh group, from earliest) read all of it with the same fetch
   settings (the monitor's defaults). Both are timed the same way: a 10 ms poller on the
   same loop watches progress, from the first records read to the last. Reported: the
   medians and the ratio monitor / bare (target >= 0.85); each round also reads with the
   monitor's GC settings a bare loop (target: monitor >= 0.90 of it) and the monitor
   through aiokafka's public ``getmany()`` (``read_batches_directly`` false), the path
   the monitor took before it read record batches directly.
2. **Detection latency under steady load.** A monitor watches a 12-partition topic and a
   252-partition one (264 partitions: ~5,000 series on ``/metrics``). ``gapwatch loadgen``
   (a subprocess) sends to the 12-partition topic at ``--rate`` records/s from 4 producers
   with drops. A client subprocess polls ``/gaps`` every 20 ms; latency = when a gap first
   appears in ``/gaps`` minus the CreateTime of the record after the gap (same host
   clock). Target p99 <= 1 s.
3. **Scrapes.** In the second half of the load, the client also scrapes ``/metrics``
   every 100 ms (client-side wall time per scrape; target <= 50 ms), while a probe on the
   monitor's event loop measures its lag (a 5 ms sleep's overshoot; target p99 <= 10 ms),
   compared with the lag in the first half, without scrapes.

Run: ``.venv/bin/python bench/bench_monitor.py [--records N] [--rounds R] [--rate R]
[--no-fetch-sessions]`` (the monitor without incremental fetch sessions)
(about 70 s with the defaults). The machine is shared with the broker, so figures
are noisy; medians are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import http.client
import json
import os
import statistics
import sys
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from harness import (
    PARTITIONS,
    PRODUCERS,
    fresh_monitor,
    monitor_config,
    percentile,
    prefill,
    process_gc,
    read_all,
    timed,
)
from prometheus_client import CollectorRegistry

from gapwatch.kafka.settings import KafkaSettings
from gapwatch.monitor.app import RunningMonitor
from gapwatch.testing.kafka import JVM_OPTS_ENV, KafkaCluster

WIDE_PARTITIONS = 252
LAG_SLEEP_S = 0.005
PHASE_TIMEOUT_S = 120.0
# The load generator batches for 20 ms (loadgen's default is 5 ms): at 2,000 records/s
# over 4 producers and 12 partitions, 5 ms made ~1,000 produce requests/s of 2 records
# each, and the load generator and the broker took most of the 2 cores the monitor's
# event-loop lag is measured on. Detection latency is counted from the record's
# CreateTime, so the batching wait is included in it.
LOADGEN_LINGER_MS = 20
# The broker of the test bed runs with the C1 JIT only (fast start-up for tests); here it
# runs as production brokers do, with the full JIT, which halves its CPU under the steady
# load. Override with $GAPWATCH_KAFKA_JVM_OPTS.
BROKER_JVM_OPTS = "-XX:TieredStopAtLevel=4"


def fetch_settings() -> dict[str, Any]:
    """The monitor's default fetch settings, which the bare loop uses too."""
    kafka = KafkaSettings()
    return {
        "max_poll_records": kafka.max_poll_records,
        "fetch_max_wait_ms": kafka.fetch_max_wait_ms,
        "fetch_min_bytes": kafka.fetch_min_bytes,
        "max_partition_fetch_bytes": kafka.max_partition_fetch_bytes,
        "isolation_level": kafka.isolation_level,
    }


# --- 1. throughput -----------------------------------------------------------------


async def bare_rate(bootstrap: str, topic: str, total: int) -> tuple[float, float]:
    """A consumer that only counts what ``getmany`` returns."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **fetch_settings()
    )
    await consumer.start()
    count = [0]

    async def loop() -> None:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        await consumer.seek_to_beginning()
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                count[0] += len(records)

    try:
        return await timed(total, lambda: count[0], loop(), timeout_s=PHASE_TIMEOUT_S)
    finally:
        await consumer.stop()


async def monitor_rate(
    bootstrap: str,
    topic: str,
    total: int,
    group: str,
    checkpoint_interval: float,
    *,
    direct: bool = True,
    sessions: bool = True,
) -> tuple[float, float]:
    """The whole monitor (group, trackers, checkpoints, HTTP) reading the same records;
    ``direct=False``: through aiokafka's public ``getmany()`` (``read_batches_directly``);
    ``sessions=False``: without incremental fetch sessions (``fetch_sessions``)."""
    config = monitor_config(bootstrap, (topic,), group, checkpoint_interval=checkpoint_interval)
    kafka = dataclasses.replace(config.kafka, read_batches_directly=direct, fetch_sessions=sessions)
    config = dataclasses.replace(config, kafka=kafka)
    async with fresh_monitor(config) as monitor:
        return await read_all(monitor, total, timeout_s=PHASE_TIMEOUT_S)


# --- 2 and 3. detection latency, scrapes, loop lag -----------------------------------


class LagProbe:
    """Overshoot of a short sleep on the running loop: how long the loop was held."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []  # (wall time, lag seconds)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(LAG_SLEEP_S)
            self.samples.append((time.time(), time.perf_counter() - before - LAG_SLEEP_S))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def between(self, start: float, end: float) -> list[float]:
        return [lag for at, lag in self.samples if start <= at < end]


async def probe_main(seconds: float) -> list[float]:
    """The control: the same probe on an event loop with nothing else to do."""
    probe = LagProbe()
    probe.start()
    await asyncio.sleep(seconds)
    await probe.stop()
    return [lag for _, lag in probe.samples]


def client_main(url: str, detect_s: float, scrape_s: float) -> None:
    """The client subprocess: poll /gaps, then also scrape /metrics; JSON on stdout."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    seen: dict[str, tuple[float, int, str]] = {}
    scrapes: list[float] = []
    series = 0

    def get(path: str) -> bytes:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: HTTP {response.status}")
        return body

    def poll_gaps(phase: str) -> None:
        for gap in json.loads(get("/gaps?limit=1000"))["gaps"]:
            after_ms = gap["timestamp_after_ms"]
            # Gaps whose post-gap record was written before polling began are not timed.
            if gap["id"] not in seen and after_ms is not None and after_ms / 1000 >= start:
                seen[gap["id"]] = (time.time(), after_ms, phase)

    get("/healthz")
    start = time.time()
    while time.time() < start + detect_s:
        poll_gaps("detect")
        time.sleep(0.02)
    scrape_start = time.time()
    next_scrape = scrape_start
    while time.time() < scrape_start + scrape_s:
        if time.time() >= next_scrape:
            next_scrape += 0.1
            before = time.perf_counter()
            body = get("/metrics")
            scrapes.append(time.perf_counter() - before)
            series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        poll_gaps("scrape")
        time.sleep(0.02)
    print(
        json.dumps(
            {
                "detections": [[gid, *value] for gid, value in seen.items()],
                "scrapes": scrapes,
                "series": series,
                "scrape_window": [scrape_start, time.time()],
            }
        )
    )


async def steady_phase(
    cluster: KafkaCluster, rate: float, seconds: float, prefix: str, *, sessions: bool = True
) -> dict[str, Any]:
    bootstrap = cluster.bootstrap_servers
    steady, wide = f"{prefix}-steady", f"{prefix}-wide"
    await cluster.create_topic(steady, partitions=PARTITIONS)
    await cluster.create_topic(wide, partitions=WIDE_PARTITIONS, timeout_s=120)
    config = monitor_config(bootstrap, (steady, wide), f"{prefix}-detect")
    kafka = dataclasses.replace(config.kafka, fetch_sessions=sessions)
    monitor = RunningMonitor(dataclasses.replace(config, kafka=kafka), registry=CollectorRegistry())
    await monitor.start()
    probe = LagProbe()
    loadgen = client = control = None
    try:
        deadline = time.monotonic() + PHASE_TIMEOUT_S
        while len(monitor.partitions) < PARTITIONS + WIDE_PARTITIONS or monitor.consumer.restoring:
            if time.monotonic() > deadline:
                raise TimeoutError("the monitor was not assigned every partition")
            await asyncio.sleep(0.1)
        probe.start()
        loadgen = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "gapwatch", "loadgen", "--bootstrap-servers", bootstrap],
            *["--topic", steady, "--rate", str(rate), "--duration", str(seconds)],
            *["--producers", str(PRODUCERS), "--drop", "0.002", "--seed", "7"],
            *["--linger-ms", str(LOADGEN_LINGER_MS)],
            *["--report-topic", f"{prefix}-reports", "--producer-prefix", "steady"],
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.sleep(2.0)  # producers connected and sending
        window = seconds - 4.0
        client = await asyncio.create_subprocess_exec(
            *[sys.executable, __file__, "--client", f"http://127.0.0.1:{monitor.http_port}"],
            *["--detect-seconds", str(window / 2), "--scrape-seconds", str(window / 2)],
            stdout=asyncio.subprocess.PIPE,
        )
        control = await asyncio.create_subprocess_exec(
            *[sys.executable, __file__, "--probe", str(window)], stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(client.communicate(), PHASE_TIMEOUT_S)
        control_out, _ = await asyncio.wait_for(control.communicate(), PHASE_TIMEOUT_S)
        truth_raw, _ = await asyncio.wait_for(loadgen.communicate(), PHASE_TIMEOUT_S)
    finally:
        for process in (client, loadgen, control):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
        await probe.stop()
        await monitor.stop()
    result: dict[str, Any] = json.loads(out)
    truth = json.loads(truth_raw)
    start_b, end_b = result["scrape_window"]
    result["lag_idle"] = probe.between(start_b - (end_b - start_b), start_b)
    result["lag_scraping"] = probe.between(start_b, end_b)
    result["dropped"] = truth["totals"]["dropped"]
    result["lag_control"] = json.loads(control_out)
    return result


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def main(args: argparse.Namespace) -> int:
    total = args.records - args.records % PARTITIONS
    os.environ.setdefault(JVM_OPTS_ENV, BROKER_JVM_OPTS)
    with KafkaCluster(nodes=1) as cluster:
        bootstrap = cluster.bootstrap_servers
        topic = "bench-monitor"
        await cluster.create_topic(topic, partitions=PARTITIONS)
        started = time.perf_counter()
        await prefill(bootstrap, topic, total)
        print(f"prefilled {total} records in {time.perf_counter() - started:.1f} s", flush=True)
        bare: list[float] = []
        watched: list[float] = []
        sparse: list[float] = []
        bare_cpu: list[float] = []
        watched_cpu: list[float] = []
        bare_tuned: list[float] = []
        bare_tuned_cpu: list[float] = []
        public: list[float] = []
        public_cpu: list[float] = []
        for round_ in range(args.rounds):
            # Alternating, so a burst of load from elsewhere on the machine hits all.
            with process_gc(tuned=False):
                rate, cpu = await bare_rate(bootstrap, topic, total)
            bare.append(rate)
            bare_cpu.append(cpu)
            with process_gc(tuned=True):  # as `gapwatch monitor` runs
                rate, cpu = await monitor_rate(
                    bootstrap, topic, total, f"bench-{round_}", 5.0, sessions=args.fetch_sessions
                )
            watched.append(rate)
            watched_cpu.append(cpu)
            with process_gc(tuned=True):
                rate, cpu = await bare_rate(bootstrap, topic, total)
            bare_tuned.append(rate)
            bare_tuned_cpu.append(cpu)
            with process_gc(tuned=True):
                rate, _ = await monitor_rate(
                    bootstrap, topic, total, f"bench-s{round_}", 30.0, sessions=args.fetch_sessions
                )
            sparse.append(rate)
            with process_gc(tuned=True):
                rate, cpu = await monitor_rate(
                    bootstrap,
                    topic,
                    total,
                    f"bench-p{round_}",
                    5.0,
                    direct=False,
                    sessions=args.fetch_sessions,
                )
            public.append(rate)
            public_cpu.append(cpu)
            print(
                f"round {round_ + 1}: bare {bare[-1]:,.0f}/s ({bare_cpu[-1]:,.0f}/CPU-s), "
                f"monitor {watched[-1]:,.0f}/s ({watched_cpu[-1]:,.0f}/CPU-s), "
                f"bare with the monitor's GC settings {bare_tuned[-1]:,.0f}/s "
                f"({bare_tuned_cpu[-1]:,.0f}/CPU-s), "
                f"monitor with 30 s checkpoints {sparse[-1]:,.0f}/s, "
                f"monitor through the public getmany {public[-1]:,.0f}/s "
                f"({public_cpu[-1]:,.0f}/CPU-s)",
                flush=True,
            )
        bare_median, monitor_median = statistics.median(bare), statistics.median(watched)
        sparse_median = statistics.median(sparse)
        ratios = sorted(m / b for m, b in zip(watched, bare, strict=True))
        cpu_ratio = statistics.median(watched_cpu) / statistics.median(bare_cpu)
        tuned_ratio = monitor_median / statistics.median(bare_tuned)
        tuned_cpu_ratio = statistics.median(watched_cpu) / statistics.median(bare_tuned_cpu)
        public_ratio = statistics.median(public) / statistics.median(bare_tuned)
        public_cpu_ratio = statistics.median(public_cpu) / statistics.median(bare_tuned_cpu)

        with process_gc(tuned=True):
            steady = await steady_phase(
                cluster, args.rate, args.seconds, "bench", sessions=args.fetch_sessions
            )
    latencies = [seen - ts_ms / 1000.0 for _, seen, ts_ms, _ in steady["detections"]]
    idle = [seen - ts / 1000.0 for _, seen, ts, phase in steady["detections"] if phase == "detect"]
    scrapes = steady["scrapes"]
    print()
    print(f"throughput: bare getmany {bare_median:,.0f} records/s, monitor {monitor_median:,.0f}")
    print(
        f"  ratio monitor/bare: {monitor_median / bare_median:.2f}  (target >= 0.85); "
        f"per round {', '.join(f'{r:.2f}' for r in ratios)}; "
        f"records per CPU-s of this process: {cpu_ratio:.2f}"
    )
    print(
        f"  against a bare loop with the monitor's GC settings too: {tuned_ratio:.2f} "
        f"(per CPU-s {tuned_cpu_ratio:.2f}; target >= 0.90); the monitor through aiokafka's "
        f"public getmany (read_batches_directly false) against it: {public_ratio:.2f} "
        f"(per CPU-s {public_cpu_ratio:.2f})"
    )
    print(
        f"  with checkpoint_interval=30 s: {sparse_median:,.0f} records/s, ratio "
        f"{sparse_median / bare_median:.2f} (the difference is tracker snapshot time)"
    )
    print(
        f"detection latency ({len(latencies)} gaps of {steady['dropped']} drops, "
        f"{args.rate:.0f} records/s): p50 {ms(percentile(latencies, 0.5))}, "
        f"p99 {ms(percentile(latencies, 0.99))}  (target p99 <= 1 s); "
        f"without scrapes p50 {ms(percentile(idle, 0.5))}, p99 {ms(percentile(idle, 0.99))}"
    )
    print(
        f"/metrics with {steady['series']} series ({len(scrapes)} scrapes under load): "
        f"median {ms(statistics.median(scrapes))}, p99 {ms(percentile(scrapes, 0.99))}, "
        f"max {ms(max(scrapes))}  (target <= 50 ms)"
    )
    print(
        f"event-loop lag p99: while scraping {ms(percentile(steady['lag_scraping'], 0.99))} "
        f"(max {ms(max(steady['lag_scraping']))}), same load without scrapes "
        f"{ms(percentile(steady['lag_idle'], 0.99))}  (target <= 10 ms); an empty event loop "
        f"in another process meanwhile: {ms(percentile(steady['lag_control'], 0.99))} "
        f"(the machine's own scheduling noise)"
    )
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=480_000, help="prefilled records")
    parser.add_argument("--rounds", type=int, default=3, help="bare/monitor rounds")
    parser.add_argument("--rate", type=float, default=2000.0, help="steady load, records/s")
    parser.add_argument("--seconds", type=float, default=34.0, help="steady load duration")
    parser.add_argument(
        "--fetch-sessions",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the monitor fetches in incremental fetch sessions (kafka.fetch_sessions)",
    )
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--probe", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--detect-seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--scrape-seconds", type=float, help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.probe:
        print(json.dumps(asyncio.run(probe_main(arguments.probe))))
        raise SystemExit(0)
    if arguments.client:
        client_main(arguments.client, arguments.detect_seconds, arguments.scrape_seconds)
        raise SystemExit(0)
    raise SystemExit(asyncio.run(main(arguments)))
