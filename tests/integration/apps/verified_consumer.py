"""A small real application for the consumer-stage chaos scenario (issue 8, scenario 5).

It consumes a topic in batches with an aiokafka consumer group, "processes" each record
by appending it to a log file (fsync'd: the truth of what was processed), marks it
processed on a :class:`gapwatch.ConsumerVerifier`, flushes the verifier, and then, with
``--commit manual``, commits. With ``--commit auto`` aiokafka auto-commits what it handed
out, processed or not.

``--stall-at-batch N`` makes the crash point deterministic for the test, which SIGKILLs
the process once the stall file appears (the first batch from the Nth on, once every
partition has had a batch processed):

* ``auto``: batch N is fetched, then the app waits until aiokafka's auto-commit has
  committed past it (``committed() >= position()``), and stalls *before processing it*;
* ``manual``: batch N is processed, logged and flushed to the verifier, and the app
  stalls *before committing it*.

Every ``--status-interval`` and at exit (SIGTERM) it writes a status JSON: the
verifier's per-partition counters, its gaps and its Prometheus exposition.

Run: ``python verified_consumer.py --bootstrap HOST:PORT --topic T --group G ...``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry, generate_latest

from gapwatch import ConsumerVerifier
from gapwatch.alerting.delivery import DeliverySettings
from gapwatch.alerting.webhook import WebhookSink
from gapwatch.core.config import TrackerConfig
from gapwatch.core.wire import parse_stamp
from gapwatch.gaps.fanout import EventSubscriber
from gapwatch.verifier import VerifierConfig

COMMIT_WAIT_S = 30.0  # bound on waiting for the auto-commit to cover the stalled batch


def _parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--commit", choices=("auto", "manual"), required=True)
    parser.add_argument("--processed-log", type=Path, required=True)
    parser.add_argument("--status", type=Path, required=True)
    parser.add_argument("--stall-file", type=Path)
    parser.add_argument("--stall-at-batch", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=40)
    parser.add_argument("--grace", type=float, default=1.0)
    parser.add_argument("--webhook-url")
    parser.add_argument("--status-interval", type=float, default=0.3)
    return parser.parse_args(argv)


def _write_json(path: Path, body: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body))
    os.replace(tmp, path)  # readers never see a half-written file


def _record_line(record: Any) -> dict[str, Any]:
    stamp = parse_stamp(record.headers)
    assert stamp is not None, "the test produces stamped records only"
    return {
        "partition": record.partition,
        "offset": record.offset,
        "producer": stamp.producer,
        "epoch": stamp.epoch,
        "seq": stamp.seq,
    }


def _dump_tasks() -> None:
    for task in asyncio.all_tasks():
        task.print_stack(file=sys.stderr)
    sys.stderr.flush()


class App:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.registry = CollectorRegistry()
        self.stopping = asyncio.Event()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=args.bootstrap,
            group_id=args.group,
            client_id="verified-consumer",
            enable_auto_commit=args.commit == "auto",
            auto_commit_interval_ms=200,
            auto_offset_reset="earliest",
            # The killed instance must leave the group quickly for the restart to get in.
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
        )
        self.sinks: list[WebhookSink] = []
        if args.webhook_url:
            self.sinks.append(
                WebhookSink(
                    url=args.webhook_url,
                    secret=None,
                    kinds=("confirmed", "duplicates"),
                    group=args.group,
                    instance=f"verified-consumer/{os.getpid()}",
                    external_url="http://127.0.0.1",
                    settings=DeliverySettings(timeout=2.0, max_retries=3, backoff_initial=0.1),
                )
            )
        subscribers: list[EventSubscriber] = list(self.sinks)
        self.verifier = ConsumerVerifier(
            self.consumer,
            VerifierConfig(
                group_id=args.group,
                bootstrap_servers=args.bootstrap,
                tick_interval=0.2,
                tracker=TrackerConfig(grace_period=args.grace, ring_size=1024),
            ),
            subscribers=subscribers,
            registry=self.registry,
        )
        self.processed_lines = 0
        self.stalled = False
        self.log = args.processed_log.open("a", encoding="utf-8")

    def status(self, *, final: bool) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "final": final,
            "at": time.time(),
            "processed_this_run": self.processed_lines,
            "partitions": [
                {
                    "topic": p.topic,
                    "partition": p.partition,
                    "restored_from": p.restored_from,
                    "frontier": p.frontier,
                    "position": p.position,
                    "records": p.counters.records,
                    "missing": p.counters.missing,
                    "gaps_confirmed": p.counters.gaps_confirmed,
                    "open_gaps": p.counters.open_gaps,
                    "duplicates": p.counters.duplicates,
                }
                for p in self.verifier.partitions()
            ],
            "gaps": [gap.to_json() for gap in self.verifier.gaps()],
            "restores": self.verifier.health.restores,
            "checkpoints": self.verifier.health.checkpoints,
            "metrics": generate_latest(self.registry).decode(),
        }

    async def process(self, records: Sequence[Any]) -> None:
        """Append every record to the processed log (fsync), then mark and flush."""
        for record in records:
            with self.verifier.processing(record):
                self.log.write(json.dumps(_record_line(record)) + "\n")
        self.log.flush()
        os.fsync(self.log.fileno())
        self.processed_lines += len(records)
        await self.verifier.flush()

    async def wait_for_auto_commit(self, tps: Sequence[TopicPartition]) -> None:
        async with asyncio.timeout(COMMIT_WAIT_S):
            for tp in tps:
                position = await self.consumer.position(tp)
                while True:
                    if (await self.consumer.committed(tp) or 0) >= position:
                        break
                    await asyncio.sleep(0.05)

    async def stall(self, records: Sequence[Any]) -> None:
        assert self.args.stall_file is not None
        _write_json(self.args.stall_file, [_record_line(r) for r in records])
        await self.stopping.wait()  # the test SIGKILLs us here

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        # A stuck run can be asked where it is: kill -USR1 <pid> prints every task's stack.
        loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)
        for sink in self.sinks:
            sink.start()
        await self.verifier.start()
        self.consumer.subscribe([self.args.topic], listener=self.verifier.listener())
        await self.consumer.start()
        status_task = asyncio.create_task(self._write_status_forever())
        batches = 0
        seen: set[TopicPartition] = set()  # partitions with at least one processed batch
        try:
            while not self.stopping.is_set():
                fetched = await self.consumer.getmany(
                    timeout_ms=200, max_records=self.args.batch_size
                )
                records = [r for rs in fetched.values() for r in rs]
                if not records:
                    continue
                batches += 1
                if self._is_stall_point(batches, seen):
                    if self.args.commit == "auto":
                        await self.wait_for_auto_commit(list(fetched))
                    else:
                        await self.process(records)
                    await self.stall(records)
                    continue
                await self.process(records)
                seen.update(fetched)
                if self.args.commit == "manual":
                    await self.consumer.commit()
        finally:
            status_task.cancel()
            await asyncio.gather(status_task, return_exceptions=True)
            final = self.status(final=True)  # while the collector is still registered
            await self.verifier.stop()
            await self.consumer.stop()
            for sink in self.sinks:
                # Give the sink a moment to deliver what is queued before it stops.
                for _ in range(20):
                    if sink.stats.queued == 0:
                        break
                    await asyncio.sleep(0.1)
                await sink.stop()
            _write_json(self.args.status, final)
            self.log.close()

    def _is_stall_point(self, batches: int, seen: set[TopicPartition]) -> bool:
        # Only once every partition has been processed at least once: a stream's first
        # processed record is its baseline (tracker rule R2), so a partition whose very
        # first batch is skipped is outside what any verifier can see (docs/verifier.md).
        wanted = self.args.stall_at_batch
        if not wanted or self.stalled or batches < wanted:
            return False
        if seen != self.consumer.assignment():
            return False
        self.stalled = True
        return True

    async def _write_status_forever(self) -> None:
        while True:
            _write_json(self.args.status, self.status(final=False))
            await asyncio.sleep(self.args.status_interval)


async def _main(args: argparse.Namespace) -> None:
    await App(args).run()  # aiokafka clients must be built inside the running loop


def main() -> None:
    asyncio.run(_main(_parse_args()))


if __name__ == "__main__":
    main()
