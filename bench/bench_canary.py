"""What the canary costs: the records and bytes it adds per broker, and the monitor's CPU
with and without it, in one run on its own 3-node ``KafkaCluster``.

1. **Traffic.** A monitor with ``--canary`` (default settings: 2 records/s per partition)
   runs for ``--seconds``; before and after, the script reads each canary partition's log
   end offset (records) and the size of its log segments on the leader's disk (bytes, as
   Kafka stores them: batch headers, record headers and the stamp included). Reported per
   broker: records/s and bytes/s written as leader, and the bytes/s all replicas add.
2. **Monitor CPU.** In alternating rounds, a monitor watching one idle application topic
   without the canary (the baseline) and the same monitor with ``--canary``, each for
   ``--seconds``, measuring this process's CPU time (all threads) per wall second. Reported:
   the medians and the difference in percent of one core, and the ratio with / without.

Run: ``.venv/bin/python bench/bench_canary.py [--seconds 20] [--rounds 2]`` (about 3 min
with the defaults, including the cluster's start). The machine is shared with the three
brokers, so CPU figures are noisy; medians are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from harness import fresh_monitor, monitor_config

from gapwatch.kafka.canary.settings import CanarySettings
from gapwatch.monitor.app import RunningMonitor
from gapwatch.monitor.config import MonitorConfig
from gapwatch.testing.kafka import KafkaCluster


def log_bytes(state_dir: Path, topic: str) -> dict[tuple[str, int], int]:
    """(node directory, partition) -> bytes of the partition's ``.log`` segments there."""
    sizes: dict[tuple[str, int], int] = {}
    for directory in state_dir.rglob(f"{topic}-*"):
        if not directory.is_dir():
            continue
        partition = int(directory.name.rsplit("-", 1)[1])
        node = next(p.name for p in directory.parents if p.name.startswith("node"))
        sizes[(node, partition)] = sum(f.stat().st_size for f in directory.glob("*.log"))
    return sizes


async def end_offsets(bootstrap: str, topic: str, partitions: list[int]) -> dict[int, int]:
    """Log end offset of each of ``partitions`` of ``topic``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        offsets = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return {tp.partition: offset for tp, offset in offsets.items()}
    finally:
        await consumer.stop()


async def cpu_share(monitor: RunningMonitor, seconds: float) -> float:
    """This process's CPU seconds per wall second while ``monitor`` runs for ``seconds``."""
    await monitor.start()
    await asyncio.sleep(3.0)  # past start-up: joining, restoring, creating topics
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    return (time.process_time() - cpu0) / (time.perf_counter() - wall0)


def with_canary(config: MonitorConfig, topic: str) -> MonitorConfig:
    return dataclasses.replace(config, canary=CanarySettings(enabled=True, topic=topic))


async def main(args: argparse.Namespace) -> int:
    cluster = KafkaCluster(nodes=3).start()
    try:
        # harness.monitor_config takes one server; the other two are found from it.
        bootstrap = cluster.bootstrap_servers.split(",")[0]
        app_topic = "bench-idle"
        await cluster.create_topic(app_topic, partitions=3, replication_factor=3)
        canary_topic = "__gapwatch_canary_bench"

        # 1. Traffic per broker.
        config = with_canary(monitor_config(bootstrap, (app_topic,), "g-traffic"), canary_topic)
        async with fresh_monitor(config) as monitor:
            await monitor.start()
            canary = monitor.canary
            assert canary is not None
            await asyncio.sleep(5.0)
            owners = dict(canary.owners)
            offsets0 = await end_offsets(bootstrap, canary_topic, sorted(owners))
            bytes0 = log_bytes(cluster.state_dir, canary_topic)
            wall0 = time.perf_counter()
            await asyncio.sleep(args.seconds)
            offsets1 = await end_offsets(bootstrap, canary_topic, sorted(owners))
            bytes1 = log_bytes(cluster.state_dir, canary_topic)
            wall = time.perf_counter() - wall0
            available = canary.availability()
        print(f"canary traffic over {wall:.1f} s (rate {CanarySettings().rate:g}/s/partition):")
        print("| broker | records/s as leader | bytes/s as leader | bytes/s all replicas |")
        print("|---|---|---|---|")
        for partition, broker in sorted(owners.items()):
            records = (offsets1[partition] - offsets0[partition]) / wall
            replica_bytes = {
                node: bytes1[(node, p)] - bytes0.get((node, p), 0)
                for (node, p) in bytes1
                if p == partition
            }
            leader_bytes = replica_bytes.get(f"node-{broker}", max(replica_bytes.values()))
            print(
                f"| {broker} | {records:.2f} | {leader_bytes / wall:.0f} | "
                f"{sum(replica_bytes.values()) / wall:.0f} |"
            )
        print(f"availability at the end: {available}")

        # 2. Monitor CPU, alternating rounds.
        without: list[float] = []
        with_: list[float] = []
        for round_ in range(args.rounds):
            base = monitor_config(bootstrap, (app_topic,), f"g-cpu-{round_}")
            async with fresh_monitor(base) as monitor:
                without.append(await cpu_share(monitor, args.seconds))
            on = with_canary(
                monitor_config(bootstrap, (app_topic,), f"g-cpuc-{round_}"), canary_topic
            )
            async with fresh_monitor(on) as monitor:
                with_.append(await cpu_share(monitor, args.seconds))
            print(
                f"round {round_ + 1}: without {without[-1] * 100:.2f} % of a core, "
                f"with canary {with_[-1] * 100:.2f} %"
            )
        off, on_ = statistics.median(without), statistics.median(with_)
        print(
            f"monitor CPU, median: without {off * 100:.2f} %, with canary {on_ * 100:.2f} % "
            f"of one core; +{(on_ - off) * 100:.2f} points; ratio {on_ / off:.2f}"
        )
    finally:
        cluster.stop()
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="CPU rounds (each: off, on)")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
