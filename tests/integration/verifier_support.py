"""The consumer-stage scenario's parts: the application process, the truth, the findings.

Three independent sources are compared:

* the log, read back with a plain ``AIOKafkaConsumer`` (:func:`read_log`);
* what the application really processed: its append-only, fsync'd log
  (:func:`read_processed`), written before it marks anything on the verifier;
* what the verifier reported: its status file, its Prometheus exposition, the webhook
  deliveries of its sink, and its checkpoint in Kafka.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from gapwatch.core.wire import parse_stamp
from gapwatch.producer import StampedProducer

APP = Path(__file__).parent / "apps" / "verified_consumer.py"

# (partition, producer, epoch, seq): one record's identity, as the tracker sees it.
Key = tuple[int, str, int, int]


def progress(message: str, *, started: float) -> None:
    """One readable progress line for ``make chaos`` (pytest ``-s``)."""
    print(f"[consumer stage {time.monotonic() - started:6.1f}s] {message}", file=sys.stderr)


async def produce(bootstrap: str, topic: str, count: int) -> None:
    """``count`` stamped records, keyed so that they spread over the topic's partitions."""
    producer = StampedProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        producer_id="scenario-5",
        reports=None,
        registry=None,
    )
    await producer.start()
    try:
        for i in range(count):
            await producer.send(topic, f"record {i}".encode(), key=f"k{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()


async def read_log(bootstrap: str, topic: str, partitions: int) -> list[Key]:
    """Every stamped record in the topic, read to the end of each partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    keys: list[Key] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        async with asyncio.timeout(30):
            for tp in tps:
                while await consumer.position(tp) < ends[tp]:
                    batch = await consumer.getmany(tp, timeout_ms=500)
                    for record in batch.get(tp, []):
                        stamp = parse_stamp(record.headers)
                        assert stamp is not None
                        keys.append((tp.partition, stamp.producer, stamp.epoch, stamp.seq))
    finally:
        await consumer.stop()
    return keys


def read_processed(path: Path) -> Counter[Key]:
    """How many times the application processed each record (its fsync'd log)."""
    seen: Counter[Key] = Counter()
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            seen[(r["partition"], r["producer"], r["epoch"], r["seq"])] += 1
    return seen


def to_keys(lines: Iterable[dict[str, Any]]) -> set[Key]:
    """Record lines (as the application writes them) as keys."""
    return {(r["partition"], r["producer"], r["epoch"], r["seq"]) for r in lines}


def confirmed_keys(status: dict[str, Any]) -> list[Key]:
    """Every sequence inside the verifier's confirmed gaps (a list: overlaps would show)."""
    return [
        (g["partition"], g["producer"], g["epoch"], seq)
        for g in status["gaps"]
        if g["state"] == "confirmed"
        for seq in range(g["first_seq"], g["last_seq"] + 1)
    ]


def total(status: dict[str, Any], counter: str) -> int:
    """A counter summed over the verifier's partitions."""
    return sum(int(p[counter]) for p in status["partitions"])


def findings_summary(status: dict[str, Any]) -> str:
    """The verifier's findings in a status, one line per partition and per gap."""
    lines = [
        f"p{p['partition']}: restored from {p['restored_from']}; records {p['records']}, "
        f"missing {p['missing']}, duplicates {p['duplicates']}, "
        f"confirmed gaps {p['gaps_confirmed']}, open {p['open_gaps']}"
        for p in status["partitions"]
    ]
    lines += [
        f"{g['state']} gap p{g['partition']} {g['producer']}/{g['epoch']} "
        f"seq {g['first_seq']}..{g['last_seq']} ({g['count']})"
        for g in status["gaps"]
    ] or ["no gaps"]
    return "\n".join("    " + line for line in lines)


def metric(text: str, name: str, **labels: str) -> float | None:
    """One sample's value from a Prometheus exposition, or None if it is absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


class AppProcess:
    """One run of the application under test, a real child process."""

    def __init__(self, workdir: Path, name: str, args: list[str]) -> None:
        self.status_path = workdir / f"{name}.status.json"
        self.stall_path = workdir / f"{name}.stall.json"
        self._stderr = (workdir / f"{name}.stderr").open("wb")
        command = [
            sys.executable,
            str(APP),
            *args,
            "--status",
            str(self.status_path),
            "--stall-file",
            str(self.stall_path),
        ]
        self.proc = subprocess.Popen(command, stdout=self._stderr, stderr=subprocess.STDOUT)
        self.name = name
        self._log = workdir / f"{name}.stderr"

    def status(self) -> dict[str, Any] | None:
        """The newest status the application wrote, if any."""
        try:
            body: dict[str, Any] = json.loads(self.status_path.read_text())
        except FileNotFoundError:
            return None
        return body

    async def wait_for(self, what: str, check: Callable[[], bool], within: float) -> None:
        """Poll ``check`` until it holds; fail with the application's output if it does not."""
        deadline = time.monotonic() + within
        while not check():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited ({self.proc.returncode}) waiting for "
                    f"{what}:\n{self.output()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {what} within {within}s:\n{self.output()}")
            await asyncio.sleep(0.1)

    def output(self) -> str:
        """The tail of the application's stdout and stderr."""
        self._stderr.flush()
        return self._log.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL: no cleanup runs in the application."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self) -> dict[str, Any]:
        """SIGTERM, wait for the graceful exit, return the final status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)  # the app dumps its stacks (faulthandler)
            time.sleep(1)
            raise AssertionError(f"{self.name} did not stop on SIGTERM:\n{self.output()}") from None
        assert code == 0, f"{self.name} exited {code}:\n{self.output()}"
        status = self.status()
        assert status is not None, self.output()
        assert status["final"], self.output()
        return status

    def close(self) -> None:
        """Make sure the process is gone (finalizer)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._stderr.close()
