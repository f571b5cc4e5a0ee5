"""StampedProducer throughput against a bare AIOKafkaProducer, on one broker, in one run.

Three variants send the same keyed records with the same linger, batch size, acks and
partitions to a 1-node cluster started by this script:

* ``bare``:         AIOKafkaProducer, no headers (the full cost of stamping is measured
                    against this; target StampedProducer >= 0.90 of it);
* ``bare+headers``: AIOKafkaProducer with the same three gapwatch headers built by the
                    caller (the wrapper's own overhead; target >= 0.97);
* ``stamped``:      StampedProducer (reports on, default interval, metrics on a registry).

Variants run in rotating order, several rounds; the medians are reported, since a broker
on the same 2-core machine makes single runs noisy. Besides throughput (records per
wall-clock second), each run reports records per second of this process's CPU time: the
broker is the same for all variants, so the client's CPU per record is where the
wrapper's cost shows, and it is far less disturbed by other load on the machine.

Run: ``.venv/bin/python bench/bench_producer.py [--records N] [--rounds R]``
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from gapwatch.core.wire import HEADER_EPOCH, HEADER_PRODUCER, HEADER_SEQ
from gapwatch.producer import StampedProducer
from gapwatch.testing.kafka import KafkaCluster

PARTITIONS = 6
TOPIC = "bench-producer"
SETTINGS: dict[str, Any] = {"linger_ms": 5, "max_batch_size": 65536, "acks": 1}

Records = list[tuple[bytes, bytes]]


async def _drive(
    send: Callable[..., Awaitable[Any]], topic: str, records: Records
) -> tuple[float, float]:
    """(records per wall-clock second, records per second of this process's CPU time)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    futures = [await send(topic, value, key) for key, value in records]
    await asyncio.gather(*futures)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return len(records) / wall, len(records) / cpu


async def run_bare(bootstrap: str, topic: str, records: Records) -> tuple[float, float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **SETTINGS)
    await producer.start()
    try:

        async def send(t: str, value: bytes, key: bytes) -> Any:
            return await producer.send(t, value, key=key)

        return await _drive(send, topic, records)
    finally:
        await producer.stop()


async def run_bare_headers(bootstrap: str, topic: str, records: Records) -> tuple[float, float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **SETTINGS)
    await producer.start()
    # What an application stamping by hand would do: fixed producer/epoch headers and
    # a per-partition sequence counter, partition chosen by aiokafka.
    producer_header = (HEADER_PRODUCER, b"bench/1")
    epoch_header = (HEADER_EPOCH, b"%d" % int(time.time() * 1000))
    counter = [0]
    try:

        async def send(t: str, value: bytes, key: bytes) -> Any:
            seq = counter[0]
            counter[0] = seq + 1
            headers = [producer_header, epoch_header, (HEADER_SEQ, b"%d" % seq)]
            return await producer.send(t, value, key=key, headers=headers)

        return await _drive(send, topic, records)
    finally:
        await producer.stop()


async def run_stamped(bootstrap: str, topic: str, records: Records) -> tuple[float, float]:
    producer = StampedProducer(
        bootstrap_servers=bootstrap, registry=CollectorRegistry(), **SETTINGS
    )
    await producer.start()
    try:

        async def send(t: str, value: bytes, key: bytes) -> Any:
            return await producer.send(t, value, key=key)

        return await _drive(send, topic, records)
    finally:
        await producer.stop()


VARIANTS = {"bare": run_bare, "bare+headers": run_bare_headers, "stamped": run_stamped}


async def main_async(
    bootstrap: str, n_records: int, rounds: int
) -> dict[str, list[tuple[float, float]]]:
    rng = random.Random(1)
    value = bytes(rng.getrandbits(8) for _ in range(100))
    records = [(b"key-%d" % rng.randrange(1000), value) for _ in range(n_records)]
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    names = list(VARIANTS)
    # Warm-up: connections, metadata, the broker's JIT.
    await run_bare(bootstrap, TOPIC, records[: n_records // 4])
    for round_no in range(rounds):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        for name in order:
            wall, cpu = await VARIANTS[name](bootstrap, TOPIC, records)
            results[name].append((wall, cpu))
            print(
                f"round {round_no + 1} {name:>13}: {wall:8.0f} records/s, {cpu:8.0f} records/CPU-s",
                file=sys.stderr,
            )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    with KafkaCluster(nodes=1) as cluster:
        asyncio.run(cluster.create_topic(TOPIC, partitions=PARTITIONS, replication_factor=1))
        results = asyncio.run(main_async(cluster.bootstrap_servers, args.records, args.rounds))
    wall = {name: statistics.median(r[0] for r in runs) for name, runs in results.items()}
    cpu = {name: statistics.median(r[1] for r in runs) for name, runs in results.items()}
    print(f"records per run: {args.records}, rounds: {args.rounds}, settings: {SETTINGS}")
    for name in VARIANTS:
        print(f"{name:>13}: median {wall[name]:8.0f} records/s, {cpu[name]:8.0f} records/CPU-s")
    for label, medians in (("throughput", wall), ("client CPU", cpu)):
        full = medians["stamped"] / medians["bare"]
        own = medians["stamped"] / medians["bare+headers"]
        print(
            f"{label:>10}: stamped/bare = {full:.3f} (target >= 0.90), "
            f"stamped/bare+headers = {own:.3f} (target >= 0.97)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
