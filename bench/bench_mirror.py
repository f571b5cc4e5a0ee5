"""Consumption throughput of a monitor attributing a copy's gaps, against the same copy
watched as a plain topic.

Starts its own 1-node ``KafkaCluster``. A source topic (12 partitions) is prefilled with
``--records`` stamped records of 100 bytes from 4 producer ids; the bench then copies it to
``src.<topic>`` as MirrorMaker 2 would (same partition, timestamp and headers) but leaves
out every ``--gap-every``-th record of each stream, so every gap on the copy is a mirror
loss whose lookup must find each missing record on the source. In alternating rounds a
monitor (fresh group, from earliest, 0.2 s grace, so gaps are confirmed and looked up while
it reads) reads the whole copy:

* ``plain``: no ``mirror_source``: the copy is an ordinary topic;
* ``mirror``: ``mirror_source src=<the same cluster>``: every confirmed gap is looked up on
  the source while the monitor reads, on the same event loop.

Throughput is timed like ``bench_monitor.py`` (10 ms poller, first record to last).
Reported: medians and the ratio mirror / plain (target: within 5 %, >= 0.95), and for the
mirror runs the gaps decided and how long after the last record the last lookup ended.

Run: ``.venv/bin/python bench/bench_mirror.py [--records N] [--rounds R] [--gap-every G]``
(about 3 minutes with the defaults). The machine is shared with the broker: figures are
noisy, read the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from harness import PARTITIONS, fresh_monitor, monitor_config, prefill, read_all

from gapwatch.core.wire import parse_stamp
from gapwatch.monitor.config import MirrorSettings, MirrorSource, MonitorConfig, TrackerSettings
from gapwatch.testing.kafka import KafkaCluster

PHASE_TIMEOUT_S = 300.0


async def copy_with_holes(bootstrap: str, source: str, target: str, gap_every: int) -> int:
    """Copy ``source`` to ``target`` record by record (partition, timestamp, headers kept),
    leaving out every ``gap_every``-th sequence of each stream; returns records copied."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=256 * 1024
    )
    await consumer.start()
    await producer.start()
    copied = 0
    try:
        tps = [TopicPartition(source, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        pending: list[asyncio.Future[object]] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batches = await consumer.getmany(timeout_ms=1000, max_records=20_000)
            for tp, records in batches.items():
                for record in records:
                    stamp = parse_stamp(record.headers)
                    if stamp is not None and stamp.seq % gap_every == gap_every - 1:
                        continue
                    pending.append(
                        await producer.send(
                            target,
                            record.value,
                            partition=tp.partition,
                            timestamp_ms=record.timestamp,
                            headers=list(record.headers),
                        )
                    )
                    copied += 1
            if len(pending) > 50_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
        await consumer.stop()
    return copied


def config_for(bootstrap: str, topic: str, group: str, *, mirrored: bool) -> MonitorConfig:
    config = monitor_config(bootstrap, (topic,), group, tracker=TrackerSettings(grace_period=0.2))
    if not mirrored:
        return config
    mirror = MirrorSettings(sources=(MirrorSource("src", (bootstrap,)),))
    return dataclasses.replace(config, mirror=mirror).validate()


async def monitor_rate(config: MonitorConfig, total: int) -> tuple[float, dict[str, object]]:
    """Records/s of a monitor reading everything, and (with mirrors) how its lookups went."""
    async with fresh_monitor(config) as monitor:
        rate, _ = await read_all(monitor, total, timeout_s=PHASE_TIMEOUT_S)
        figures: dict[str, object] = {}
        if monitor.mirror is not None:
            read_at = time.monotonic()
            table = monitor.mirror.collector  # the families say what the lookups did
            for _ in range(2400):  # at most 120 s
                families = {f.name: dict(f.samples) for f in table.read()}
                confirmed = sum(1 for g in monitor.store.values() if g.state.value == "confirmed")
                if (
                    families["gapwatch_mirror_lookups_pending"][()] == 0
                    and len(monitor.origins) >= confirmed
                ):
                    break
                await asyncio.sleep(0.05)
            figures["decided"] = len(monitor.origins)
            figures["lookups_done_after_s"] = round(time.monotonic() - read_at, 2)
            families = {f.name: dict(f.samples) for f in table.read()}
            by_origin: dict[str, float] = {}
            for labels, value in families["gapwatch_mirror_missing_records"].items():
                by_origin[labels[-1]] = by_origin.get(labels[-1], 0) + value
            figures["missing_by_origin"] = by_origin
        return rate, figures


async def main(records: int, rounds: int, gap_every: int) -> None:
    with KafkaCluster(nodes=1) as cluster:
        bootstrap = cluster.bootstrap_servers
        source = "bench-mirror"
        target = f"src.{source}"
        await cluster.create_topic(source, partitions=PARTITIONS)
        await cluster.create_topic(target, partitions=PARTITIONS)
        await prefill(bootstrap, source, records)
        total = await copy_with_holes(bootstrap, source, target, gap_every)
        print(f"prefilled {records} records, copied {total} (a gap every {gap_every} per stream)")
        rates: dict[str, list[float]] = {"plain": [], "mirror": []}
        names = list(rates)
        for round_no in range(rounds):
            for name in names[round_no % 2 :] + names[: round_no % 2]:
                group = f"bench-mirror-{name}-{round_no}"
                config = config_for(bootstrap, target, group, mirrored=name == "mirror")
                rate, figures = await monitor_rate(config, total)
                rates[name].append(rate)
                print(f"round {round_no + 1} {name:>6}: {rate:10,.0f} records/s  {figures}")
        base = statistics.median(rates["plain"])
        print()
        print("| monitor | median records/s | ratio to plain |")
        print("|---|---|---|")
        for name, values in rates.items():
            median = statistics.median(values)
            print(f"| {name} | {median:,.0f} | {median / base:.3f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=600_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gap-every", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(main(args.records, args.rounds, args.gap_every))
    sys.exit(0)
