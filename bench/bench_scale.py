"""The monitor at thousands of partitions: start-up, checkpoints, /metrics, detection, memory.

Starts its own 1-node ``KafkaCluster``. For each size (``--sizes``, default 1,000 and
5,000 partitions) it creates topics of at most :data:`TOPIC_PARTITIONS` partitions each
(KRaft refuses more than 10,000 partition records in one request), writes
``--records`` stamped records to every partition (4 producer ids), and then measures, in
two child processes (1-2, then 3-6: the second one's RSS is one monitor's alone; a
stopped monitor's memory is not all given back to the system):

1. **Start to ready, fresh.** ``RunningMonitor`` (fresh group, from earliest) from
   ``start()`` until every partition is assigned and none is being restored.
2. **Checkpointing.** Until every partition has been checkpointed once, a probe on the
   monitor's event loop measures its lag (a 5 ms sleep's overshoot; target p99 <= 10 ms).
3. **Start to ready with checkpoints restored.** The monitor is stopped (final
   checkpoint of every partition) and a new one started in the same group; target
   <= 30 s at 5,000 partitions.
4. **Detection latency under steady load.** A load subprocess sends ``--rate`` stamped
   records/s round robin over all partitions, :data:`LOAD_RUN` at a time, skipping 1 % of
   sequences; a client polls ``/gaps`` every 20 ms (``bench_monitor.py --client``);
   latency = when a gap first appears minus the timestamp of the record after it, which
   the topics set to the broker's append time (:data:`TOPIC_CONFIGS`). Target p99 <= 1 s
   at 1,000 partitions. The monitor's CPU time during the load is printed with it (on a
   loaded machine the monitor waits for a core).
5. **/metrics** at partition granularity, scraped by the same client every 100 ms in the
   second half of the load; target <= 1 s at 5,000 partitions.
6. **RSS** of the second child process after the load, and the slope per partition between the
   sizes, extrapolated to 10,000 partitions (target <= 2.5 GB). With the default
   ``--records`` the rings are nearly empty; with ``--records`` of at least the ring size
   (16,384; e.g. ``--sizes 30,300 --records 16500``) the first process reads every record
   before its checkpoints and the second restores full rings (its first checkpoint round
   then mostly happens while reading, so the lag figure of 2 means little). Then
   the time of one full garbage collection, with the GC settings of ``gapwatch monitor``
   (``tune_gc``, restored partitions frozen by ``freeze_survivors``).

Run: ``.venv/bin/python bench/bench_scale.py [--sizes 1000,5000] [--records 20]
[--rate 2000] [--seconds 16] [--profile FILE] [--stalls-ms MS] [--no-fetch-sessions]``
(6-12 minutes with the defaults on the shared 2 cores). ``--no-fetch-sessions`` runs the
monitor with ``kafka.fetch_sessions`` off (aiokafka's own fetching: every partition in
every fetch). ``--profile FILE`` writes a cProfile of each phase to
``FILE-<size>-<phase>``; ``--stalls-ms MS`` prints where the monitor's event loop was each
time it was held longer than that.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import faulthandler
import gc
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from bench_monitor import BROKER_JVM_OPTS, LagProbe
from harness import PRODUCERS, VALUE, monitor_config, percentile
from prometheus_client import CollectorRegistry

from gapwatch.commands.process_gc import freeze_survivors, tune_gc
from gapwatch.core.config import DEFAULT_RING_SIZE
from gapwatch.core.wire import encode_stamp
from gapwatch.monitor.app import RunningMonitor
from gapwatch.monitor.config import MonitorConfig
from gapwatch.testing.kafka import JVM_OPTS_ENV, KafkaCluster

TOPIC_PARTITIONS = 1000
DROP = 0.01  # probability that the steady load skips a sequence
LOAD_RUN = 10  # records the steady load sends to one partition before the next
FILL_ATTEMPTS = 5
READY_TIMEOUT_S = 180.0
CHECKPOINT_INTERVAL_S = 5.0
MEMORY_TARGET_PARTITIONS = 10_000
MEMORY_TARGET_BYTES = 2.5e9
RESULT = "scale-result "  # the child's one line for the parent, whatever else it prints
MONITOR_SCRIPT = Path(__file__).with_name("bench_monitor.py")
# Record timestamps are the broker's append time, so detection latency is counted from
# when the record after a gap was in the log: one Python producer spreading its load over
# thousands of partitions on the same 2 cores delivered records tens of seconds after
# creating them, and CreateTime charged that delay to the monitor.
TOPIC_CONFIGS = {"message.timestamp.type": "LogAppendTime"}


def topic_names(size: int) -> list[str]:
    """The topics holding ``size`` partitions, :data:`TOPIC_PARTITIONS` at most each."""
    count = -(-size // TOPIC_PARTITIONS)
    return [f"scale-{size}-{i}" for i in range(count)]


def topic_sizes(size: int) -> list[int]:
    full, rest = divmod(size, TOPIC_PARTITIONS)
    return [TOPIC_PARTITIONS] * full + ([rest] if rest else [])


async def fill(bootstrap: str, topics: dict[str, int], per_partition: int) -> int:
    """``per_partition`` stamped records on every partition of ``topics``, round robin
    over the producer ids; returns the records sent.

    A partition whose send failed is sent again, up to :data:`FILL_ATTEMPTS` times: on
    the loaded shared machine a broker just given thousands of new partitions answered
    NotLeaderForPartition for some of them after the producer's own retries."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20)
    await producer.start()
    sent = 0
    todo = [(topic, p) for topic, partitions in topics.items() for p in range(partitions)]
    try:
        for attempt in range(FILL_ATTEMPTS):
            failed: list[tuple[str, int]] = []
            for start in range(0, len(todo), 500):
                chunk = todo[start : start + 500]
                pending = [await send_lane(producer, lane, per_partition) for lane in chunk]
                results = await asyncio.gather(*pending, return_exceptions=True)
                for lane, result in zip(chunk, results, strict=True):
                    if isinstance(result, BaseException):
                        failed.append(lane)
                    else:
                        sent += per_partition
            if not failed:
                return sent
            progress(f"fill: {len(failed)} partitions failed (attempt {attempt + 1}); again")
            todo = failed
            await asyncio.sleep(2.0)
    finally:
        await producer.stop()
    raise RuntimeError(f"fill: {len(todo)} partitions still failing")


async def send_lane(
    producer: AIOKafkaProducer, lane: tuple[str, int], per_partition: int
) -> asyncio.Future[Any]:
    """Queues ``per_partition`` stamped records for one partition in as many batches as
    they need (a batch holds ~16 KiB: a few hundred records; ``--records 16500`` fills
    every ring) and returns one future for all of them."""
    topic, partition = lane
    sends = []
    n = 0
    while n < per_partition:
        batch = producer.create_batch()
        while n < per_partition:
            pid = n % PRODUCERS
            headers = encode_stamp(f"scale-{pid}", 1, n // PRODUCERS)
            if batch.append(key=None, value=VALUE, timestamp=None, headers=headers) is None:
                break  # full: this record starts the next batch
            n += 1
        sends.append(await producer.send_batch(batch, topic, partition=partition))
    return asyncio.ensure_future(asyncio.gather(*sends))


@contextlib.asynccontextmanager
async def scale_monitor(config: MonitorConfig) -> AsyncIterator[RunningMonitor]:
    """A monitor as ``gapwatch monitor`` runs it (restored partitions frozen out of the
    garbage collector's sight after each restore step), with its own registry; stopped on
    the way out."""
    monitor = RunningMonitor(config, registry=CollectorRegistry(), on_restore_step=freeze_survivors)
    try:
        yield monitor
    finally:
        await monitor.stop()


class StallSampler:
    """Where the event loop is while something holds it: a task on the loop notes the
    time every millisecond; a thread that sees no note for longer than ``threshold`` dumps
    the stacks (``faulthandler``) and prints the main thread's innermost frames on
    stderr, once per stall. For attributing the lag, not for measuring it."""

    def __init__(self, threshold: float) -> None:
        self._threshold = threshold
        self._tick = time.perf_counter()
        self._done = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._watch, daemon=True)
        main = threading.main_thread().ident or 0
        self._marker = f"Thread 0x{main:016x}"

    def start(self) -> None:
        self._task = asyncio.create_task(self._beat())
        self._thread.start()

    async def stop(self) -> None:
        self._done.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _beat(self) -> None:
        while True:
            self._tick = time.perf_counter()
            await asyncio.sleep(0.001)

    def _watch(self) -> None:
        reported = 0.0
        with tempfile.TemporaryFile("w+") as dump:
            while not self._done.wait(0.002):
                tick = self._tick
                if time.perf_counter() - tick > self._threshold and tick != reported:
                    reported = tick
                    dump.seek(0)
                    dump.truncate()
                    faulthandler.dump_traceback(dump, all_threads=True)
                    dump.seek(0)
                    section = dump.read().split(self._marker, 1)[-1].split("\n\n", 1)[0]
                    frames = [line.strip() for line in section.splitlines()[1:9]]
                    progress("stall: " + " <- ".join(frames))


def full_collection_seconds() -> float:
    """How long a full collection of the cyclic garbage collector takes now: the stall
    that every full collection puts on the event loop."""
    started = time.perf_counter()
    gc.collect()
    return time.perf_counter() - started


def cpu_seconds() -> float:
    """CPU time this process has used so far (user and system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_bytes() -> int:
    """This process's resident set size now."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def progress(line: str) -> None:
    """A phase of the child's run, on stderr (stdout carries its result)."""
    print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)


async def wait_ready(monitor: RunningMonitor, size: int) -> float:
    """Seconds from now until ``monitor`` owns ``size`` restored partitions."""
    progress(f"waiting for {size} partitions to be restored")
    started = time.perf_counter()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while (
        len(monitor.partitions) < size
        or not monitor.consumer.is_assigned_once
        or monitor.consumer.restoring
    ):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready: {len(monitor.partitions)} of {size} partitions")
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def wait_checkpointed(monitor: RunningMonitor, size: int, since: int) -> float:
    """Seconds from now until ``size`` more checkpoints were written than ``since``."""
    progress(f"waiting for {size} checkpoints")
    started = time.perf_counter()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while monitor.health.checkpoints - since < size:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {monitor.health.checkpoints - since} of {size} checkpoints")
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def wait_read(monitor: RunningMonitor, records: int) -> float:
    """Seconds from now until ``monitor`` has read ``records`` records in all."""
    progress(f"waiting for {records} records to be read")
    started = time.perf_counter()
    deadline = time.monotonic() + READY_TIMEOUT_S * 4
    while (read := sum(state.counters.records for state in monitor.partitions)) < records:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {read} of {records} records read")
        await asyncio.sleep(0.5)
    return time.perf_counter() - started


async def control_main() -> None:
    """The control: the lag probe on an empty event loop in a process of its own, until
    stdin closes; its samples as JSON on stdout (the machine's own scheduling noise)."""
    probe = LagProbe()
    probe.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()
    await probe.stop()
    print(json.dumps(probe.samples))


async def measure_size(args: argparse.Namespace) -> dict[str, Any]:
    """A child process: the figures of one phase (``--phase``) of one size, as a dict."""
    sampler = StallSampler(args.stalls_ms / 1000.0) if args.stalls_ms else None
    if sampler is not None:
        sampler.start()
    control = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--control",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    phase = first_phase if args.phase == "fresh" else second_phase
    try:
        profile = cProfile.Profile() if args.profile else None
        if profile is not None:
            profile.enable()
        try:
            result = await phase(args)
        finally:
            if profile is not None:
                profile.disable()
                profile.dump_stats(f"{args.profile}-{args.size}-{args.phase}")
    finally:
        if sampler is not None:
            await sampler.stop()
        assert control.stdin is not None
        control.stdin.close()
        out, _ = await control.communicate()
    noise = json.loads(out)
    start, end = result.pop("window")
    result[f"lag_control_{args.phase}"] = [lag for at, lag in noise if start <= at < end]
    return result


def size_config(args: argparse.Namespace) -> MonitorConfig:
    """The monitor of one size: its topics, in a group of its own."""
    topics = tuple(topic_names(args.size))
    group = f"scale-{args.size}"
    config = monitor_config(
        args.bootstrap, topics, group, checkpoint_interval=CHECKPOINT_INTERVAL_S
    )
    kafka = dataclasses.replace(config.kafka, fetch_sessions=args.fetch_sessions)
    return dataclasses.replace(config, kafka=kafka)


async def first_phase(args: argparse.Namespace) -> dict[str, Any]:
    """Figures 1 and 2: a fresh group to ready, then its first checkpoint of every
    partition with the loop's lag meanwhile; stopped (every partition checkpointed and
    committed on the way out)."""
    size = args.size
    tune_gc()
    result: dict[str, Any] = {"rss_base": rss_bytes()}
    async with scale_monitor(size_config(args)) as first:
        probe = LagProbe()
        started = time.perf_counter()
        await first.start()
        await wait_ready(first, size)
        result["ready_fresh"] = time.perf_counter() - started
        if args.records >= DEFAULT_RING_SIZE:
            # full rings: every prefilled record read before the checkpoints, so the
            # second process restores full rings and its RSS is theirs
            result["read_all"] = await wait_read(first, size * args.records)
        probe.start()
        window_start = time.time()
        result["first_round"] = await wait_checkpointed(first, size, 0)
        result["window"] = (window_start, time.time())
        result["lag_checkpointing"] = probe.between(window_start, time.time())
        await probe.stop()
        result["rss_fresh"] = rss_bytes()
    return result


async def second_phase(args: argparse.Namespace) -> dict[str, Any]:
    """Figures 3 to 6, in a process of its own (its RSS is one monitor's): start to ready
    with every checkpoint restored, then the steady load, detection, /metrics and RSS."""
    size = args.size
    tune_gc()
    result: dict[str, Any] = {}
    async with scale_monitor(size_config(args)) as second:
        started = time.perf_counter()
        await second.start()
        await wait_ready(second, size)
        result["ready_restored"] = time.perf_counter() - started
        result["restore_failures"] = second.health.checkpoint_restore_failures
        probe = LagProbe()
        probe.start()
        window_start = time.time()
        cpu_start = cpu_seconds()
        topics = dict(zip(topic_names(size), topic_sizes(size), strict=True))
        load = await steady_load(second, args.bootstrap, topics, args)
        result["window"] = (window_start, time.time())
        result["load_cpu"] = cpu_seconds() - cpu_start
        result["load_wall"] = time.time() - window_start
        await probe.stop()
        result.update(load)
        result["lag_steady"] = [lag for _, lag in probe.samples]
        result["rss"] = rss_bytes()
        result["full_gc"] = full_collection_seconds()
        result["gc_walked"] = len(gc.get_objects())
        result["gc_frozen"] = gc.get_freeze_count()
        sessions = second.consumer.fetch_sessions
        result["fetch_sessions"] = sessions is not None
        result["session_resets"] = 0 if sessions is None else sessions.resets
    return result


async def load_main(args: argparse.Namespace) -> None:
    """The load subprocess: ``--rate`` stamped records/s for ``--seconds`` over every
    partition of ``--load`` (``topic:partitions``, comma separated), :data:`LOAD_RUN`
    records at a time per partition in turn, from one producer id, each record's sequence
    skipped with probability :data:`DROP` (the loss to detect); prints the drops as JSON.

    ``gapwatch loadgen`` at thousands of partitions did not finish a 16 s run within
    minutes here (a producer lane per partition and producer id), and a send per record
    to the next partition left aiokafka's producer a batch of one record per partition:
    on the shared machine a quarter of them timed out. So the load is this plain loop of
    small batches; one producer id keeps a record per stream every few seconds."""
    topics = dict(item.split(":") for item in args.load.split(","))
    lanes = [(t, p) for t, count in topics.items() for p in range(int(count))]
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks=1, linger_ms=20)
    await producer.start()
    rng = random.Random(7)
    seqs: dict[tuple[str, int], int] = {}
    dropped = sent = 0
    pending: list[asyncio.Future[Any]] = []
    results: list[Any] = []
    started = time.monotonic()
    try:
        while time.monotonic() - started < args.seconds:
            due = int((time.monotonic() - started) * args.rate)
            while sent < due:
                topic, partition = lanes[(sent // LOAD_RUN) % len(lanes)]
                batch = producer.create_batch()
                seq = seqs.get((topic, partition), 0)
                for _ in range(LOAD_RUN):
                    if seq > 0 and rng.random() < DROP:
                        seq += 1  # the lost record
                        dropped += 1
                    headers = encode_stamp("steady", 1, seq)
                    batch.append(key=None, value=VALUE, timestamp=None, headers=headers)
                    seq += 1
                seqs[topic, partition] = seq
                pending.append(await producer.send_batch(batch, topic, partition=partition))
                sent += LOAD_RUN
            await asyncio.sleep(0.005)
        results = await asyncio.gather(*pending, return_exceptions=True)
    finally:
        await producer.stop()
    failed = LOAD_RUN * sum(1 for r in results if isinstance(r, BaseException))
    print(json.dumps({"dropped": dropped, "sent": sent, "failed": failed}))


async def steady_load(
    monitor: RunningMonitor, bootstrap: str, topics: dict[str, int], args: argparse.Namespace
) -> dict[str, Any]:
    """The load and the /gaps and /metrics client, each in a subprocess of its own."""
    progress("steady load")
    spec = ",".join(f"{t}:{n}" for t, n in topics.items())
    load = await asyncio.create_subprocess_exec(
        *[sys.executable, __file__, "--load", spec, "--bootstrap", bootstrap],
        *["--rate", str(args.rate), "--seconds", str(args.seconds)],
        stdout=asyncio.subprocess.PIPE,
    )
    client = None
    try:
        await asyncio.sleep(2.0)  # the producer connected and sending
        window = args.seconds - 4.0
        client = await asyncio.create_subprocess_exec(
            *[sys.executable, str(MONITOR_SCRIPT), "--client"],
            f"http://127.0.0.1:{monitor.http_port}",
            *["--detect-seconds", str(window / 2), "--scrape-seconds", str(window / 2)],
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(client.communicate(), READY_TIMEOUT_S)
        truth, _ = await asyncio.wait_for(load.communicate(), READY_TIMEOUT_S)
    finally:
        for process in (client, load):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
    seen = json.loads(out)
    return {
        "latencies": [at - ts_ms / 1000.0 for _, at, ts_ms, _ in seen["detections"]],
        "scrapes": seen["scrapes"],
        "series": seen["series"],
        "dropped": json.loads(truth)["dropped"],
        "load_failed": json.loads(truth)["failed"],
    }


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def verdict(value: float, target: float) -> str:
    return f"(target <= {target:g}: {'met' if value <= target else 'MISSED'})"


def report(result: dict[str, Any]) -> None:
    size = result["size"]
    lag_ckpt = percentile(result["lag_checkpointing"], 0.99)
    lag_steady = percentile(result["lag_steady"], 0.99)
    noise_ckpt = percentile(result["lag_control_fresh"], 0.99)
    noise_steady = percentile(result["lag_control_restored"], 0.99)
    latency = percentile(result["latencies"], 0.99)
    scrape = statistics.median(result["scrapes"]) if result["scrapes"] else float("nan")
    sessions = "in fetch sessions" if result["fetch_sessions"] else "without fetch sessions"
    print(f"--- {size} partitions, fetching {sessions} ({result['session_resets']} resets)")
    print(
        f"start to ready, fresh group: {result['ready_fresh']:.1f} s; "
        f"with checkpoints restored: {result['ready_restored']:.1f} s "
        f"{verdict(result['ready_restored'], 30.0) if size >= 5000 else ''} "
        f"({result['restore_failures']} restore failures)"
    )
    print(
        f"first checkpoint round of every partition: {result['first_round']:.1f} s; "
        f"event-loop lag p99 meanwhile {ms(lag_ckpt)} {verdict(lag_ckpt * 1000, 10)}, "
        f"max {ms(max(result['lag_checkpointing'], default=0.0))}; an empty loop in another "
        f"process meanwhile: p99 {ms(noise_ckpt)} (the machine's scheduling noise)"
    )
    print(
        f"detection latency p99 {ms(latency)} (median "
        f"{ms(percentile(result['latencies'], 0.5))}) over {len(result['latencies'])} gaps of "
        f"{result['dropped']} drops ({result['load_failed']} sends of the load failed) "
        f"{verdict(latency, 1.0) if size <= 1000 else '(reported)'}; "
        f"loop lag p99 under load {ms(lag_steady)} (empty loop: {ms(noise_steady)})"
    )
    print(
        f"the monitor's process used {result['load_cpu']:.1f} CPU-s in the "
        f"{result['load_wall']:.1f} s of the load ({result['load_cpu'] / result['load_wall']:.0%}"
        " of one core)"
    )
    print(
        f"/metrics, partition granularity, {result['series']} series: median "
        f"{ms(scrape)}, max {ms(max(result['scrapes'], default=float('nan')))} "
        f"{verdict(scrape, 1.0) if size >= 5000 else ''}"
    )
    if "read_all" in result:
        print(f"every prefilled record read in the first process in {result['read_all']:.1f} s")
    rings = "full rings, restored" if "read_all" in result else "nearly empty rings"
    print(
        f"RSS {result['rss'] / 1e6:.0f} MB with {rings} after the load "
        f"({result['rss_fresh'] / 1e6:.0f} MB after the first checkpoints in the first "
        f"process; an idle process: {result['rss_base'] / 1e6:.0f} MB)"
    )
    print(
        f"a full garbage collection now: {ms(result['full_gc'])} "
        f"({result['gc_walked']} objects walked, {result['gc_frozen']} frozen)"
    )


async def main(args: argparse.Namespace) -> int:
    sizes = sorted(int(s) for s in args.sizes.split(","))
    os.environ.setdefault(JVM_OPTS_ENV, BROKER_JVM_OPTS)
    results: list[dict[str, Any]] = []
    with KafkaCluster(nodes=1) as cluster:
        bootstrap = cluster.bootstrap_servers
        for size in sizes:
            names = dict(zip(topic_names(size), topic_sizes(size), strict=True))
            started = time.perf_counter()
            for name, partitions in names.items():
                await cluster.create_topic(
                    name, partitions=partitions, configs=TOPIC_CONFIGS, timeout_s=120
                )
            created = time.perf_counter() - started
            sent = await fill(bootstrap, names, args.records)
            print(
                f"{size} partitions: created in {created:.1f} s, {sent} records written in "
                f"{time.perf_counter() - started - created:.1f} s",
                flush=True,
            )
            result: dict[str, Any] = {"size": size}
            for phase in ("fresh", "restored"):
                child = await asyncio.create_subprocess_exec(
                    *[sys.executable, __file__, "--size", str(size), "--phase", phase],
                    *["--bootstrap", bootstrap],
                    *["--rate", str(args.rate), "--seconds", str(args.seconds)],
                    *["--records", str(args.records)],
                    *(["--profile", args.profile] if args.profile else []),
                    *(["--stalls-ms", str(args.stalls_ms)] if args.stalls_ms else []),
                    *([] if args.fetch_sessions else ["--no-fetch-sessions"]),
                    stdout=asyncio.subprocess.PIPE,
                )
                out, _ = await child.communicate()
                if child.returncode != 0:
                    print(f"the {size}-partition {phase} run failed (exit {child.returncode})")
                    return 1
                line = next(x for x in out.decode().splitlines() if x.startswith(RESULT))
                result.update(json.loads(line.removeprefix(RESULT)))
            results.append(result)
            report(results[-1])
    if len(results) >= 2:
        small, large = results[0], results[-1]
        slope = (large["rss"] - small["rss"]) / (large["size"] - small["size"])
        at_target = large["rss"] + slope * (MEMORY_TARGET_PARTITIONS - large["size"])
        rings = "full rings" if args.records >= DEFAULT_RING_SIZE else "nearly empty rings"
        print(
            f"RSS slope with {rings} ({args.records} records read per partition "
            f"plus the load): {slope / 1024:.1f} KiB per partition ({small['size']} -> "
            f"{large['size']}); extrapolated to {MEMORY_TARGET_PARTITIONS} partitions: "
            f"{at_target / 1e9:.2f} GB {verdict(at_target / 1e9, MEMORY_TARGET_BYTES / 1e9)}"
        )
        fresh = (large["rss_fresh"] - small["rss_fresh"]) / (large["size"] - small["size"])
        print(
            f"the same slope in the first processes (they read every record, fetch buffers "
            f"included): {fresh / 1024:.1f} KiB per partition"
        )
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,5000", help="partition counts, comma separated")
    parser.add_argument("--records", type=int, default=20, help="records per partition")
    parser.add_argument("--rate", type=float, default=2000.0, help="steady load, records/s")
    parser.add_argument("--seconds", type=float, default=16.0, help="steady load duration")
    parser.add_argument(
        "--profile", help="write a cProfile of each size's monitor process to FILE-<size>"
    )
    parser.add_argument(
        "--stalls-ms",
        type=float,
        help="print where the monitor's event loop was when held longer than this",
    )
    parser.add_argument(
        "--fetch-sessions",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the monitor fetches in incremental fetch sessions (kafka.fetch_sessions)",
    )
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=("fresh", "restored"), help=argparse.SUPPRESS)
    parser.add_argument("--control", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.control:
        asyncio.run(control_main())
        sys.exit(0)
    if arguments.load:
        asyncio.run(load_main(arguments))
        sys.exit(0)
    if arguments.size is not None:
        print(RESULT + json.dumps(asyncio.run(measure_size(arguments))), flush=True)
        sys.exit(0)
    sys.exit(asyncio.run(main(arguments)))
