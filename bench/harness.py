"""Set-up and timing shared by the monitor benchmarks (``bench_monitor.py``, ``bench_sinks.py``).

Prefilling a topic with stamped records, the monitor's config for a run, timing a reader
from its first record to its last, a percentile, the GC settings of one phase and an
alert receiver in its own process. The scripts import it as ``harness`` (a script's own
folder is on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from gapwatch.commands.process_gc import tune_gc
from gapwatch.core.wire import encode_stamp
from gapwatch.kafka.settings import KafkaSettings
from gapwatch.monitor.app import RunningMonitor
from gapwatch.monitor.config import (
    AlertingSettings,
    CheckpointSettings,
    HttpSettings,
    MonitorConfig,
    TrackerSettings,
    WatchSettings,
)

PARTITIONS = 12
PRODUCERS = 4
VALUE = b"v" * 100
POLL_S = 0.010


async def prefill(bootstrap: str, topic: str, total: int, *, gap_every: int | None = None) -> int:
    """``total`` stamped records, spread evenly over partitions and producer ids, with every
    ``gap_every``-th sequence of each stream skipped if given; returns the records sent."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=256 * 1024
    )
    await producer.start()
    sent = 0
    try:
        per_partition = total // PARTITIONS
        seqs = [[0] * PRODUCERS for _ in range(PARTITIONS)]
        written = [0] * PARTITIONS
        pending: list[asyncio.Future[Any]] = []
        while any(w < per_partition for w in written):
            for partition in range(PARTITIONS):
                batch = producer.create_batch()
                while written[partition] < per_partition:
                    pid = written[partition] % PRODUCERS
                    seq = seqs[partition][pid]
                    if gap_every is not None and seq % gap_every == gap_every - 1:
                        seq += 1  # the lost record
                    headers = encode_stamp(f"bench-{pid}", 1, seq)
                    if batch.append(key=None, value=VALUE, timestamp=None, headers=headers) is None:
                        break
                    seqs[partition][pid] = seq + 1
                    written[partition] += 1
                if batch.record_count():
                    sent += batch.record_count()
                    pending.append(await producer.send_batch(batch, topic, partition=partition))
            if len(pending) > 200:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


def monitor_config(
    bootstrap: str,
    topics: tuple[str, ...],
    group: str,
    *,
    checkpoint_interval: float = 5.0,
    tracker: TrackerSettings | None = None,
    alerting: AlertingSettings | None = None,
) -> MonitorConfig:
    """A monitor on ``topics`` in a fresh ``group`` from earliest, HTTP on a free port."""
    return MonitorConfig(
        kafka=KafkaSettings(bootstrap_servers=(bootstrap,)),
        watch=WatchSettings(topics=topics, group_id=group, start_from="earliest"),
        tracker=tracker or TrackerSettings(),
        checkpoints=CheckpointSettings(interval=checkpoint_interval),
        http=HttpSettings(host="127.0.0.1", port=0),
        alerting=alerting or AlertingSettings(),
    ).validate()


async def timed(
    total: int, progress: Callable[[], int], work: Awaitable[Any], *, timeout_s: float
) -> tuple[float, float]:
    """Records/s of ``work`` from its first progress to ``total``, sampled every 10 ms, and
    records per CPU second of this process (all its threads) over the same span: the
    broker and other load on the shared machine disturb the latter far less."""
    task = asyncio.ensure_future(work)
    first_at = first_count = first_cpu = None
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
            count = progress()
            now = time.perf_counter()
            if first_at is None and count > 0:
                first_at, first_count, first_cpu = now, count, time.process_time()
            if count >= total and first_at is not None and first_count is not None:
                assert first_cpu is not None
                if count == first_count:
                    # Everything was read between two samples: no span to time.
                    raise ValueError(
                        f"all {total} records were read within one {POLL_S * 1000:.0f} ms "
                        "sample; use more --records"
                    )
                cpu = time.process_time() - first_cpu
                return (total - first_count) / (now - first_at), (total - first_count) / cpu
            if task.done():
                task.result()
        raise TimeoutError(f"only {progress()} of {total} records read")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def fresh_monitor(config: MonitorConfig) -> AsyncIterator[RunningMonitor]:
    """A monitor with its own registry (not yet started), stopped on the way out."""
    monitor = RunningMonitor(config, registry=CollectorRegistry())
    try:
        yield monitor
    finally:
        await monitor.stop()


async def read_all(monitor: RunningMonitor, total: int, *, timeout_s: float) -> tuple[float, float]:
    """Start ``monitor`` and time it (see ``timed``) until its positions add up to ``total``."""

    def progress() -> int:
        return sum(s.position or 0 for s in monitor.partitions)

    async def run() -> None:
        await monitor.start()
        await asyncio.Event().wait()

    return await timed(total, progress, run(), timeout_s=timeout_s)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; NaN if empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@contextlib.contextmanager
def process_gc(*, tuned: bool) -> Iterator[None]:
    """The GC settings of ``gapwatch monitor`` (``tuned``) or CPython's defaults, for one
    phase; the defaults are restored afterwards."""
    defaults = gc.get_threshold()
    if tuned:
        tune_gc()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*defaults)


@contextlib.contextmanager
def receiver_process(mode: str) -> Iterator[str]:
    """A receiver in its own process (its threads must not take the monitor's GIL)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gapwatch.testing.receiver", mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
