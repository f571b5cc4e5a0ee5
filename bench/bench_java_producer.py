"""StampingProducer (clients/java) throughput against a bare KafkaProducer, in one run.

Starts a 1-node cluster (gapwatch.testing.kafka), then one JVM
(``io.gapwatch.clients.apps.ProducerBench``, built by ``make java``) that sends the same
keyed 100-byte records to one 6-partition topic with the same settings (``acks=all``,
idempotence on, ``linger.ms=5``, ``batch.size=65536``) through three producers, in
rotating order, several rounds:

* ``bare``:         KafkaProducer, no headers (target StampingProducer >= 0.90 of it);
* ``bare+headers``: KafkaProducer with the three headers added by the caller, as
                    docs/wire-format.md shows (target >= 0.97);
* ``stamping``:     StampingProducer, producer reports on.

Medians of records per wall-clock second and per second of the JVM's CPU time are
printed; the ratios are of those medians.

Run: ``.venv/bin/python bench/bench_java_producer.py [--records N] [--rounds R] [--threads T]
[--value-bytes B]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from gapwatch.testing.kafka import KafkaCluster

JAVA_DIR = Path(__file__).resolve().parents[1] / "clients" / "java"
TARGET = JAVA_DIR / "target"
PARTITIONS = 6
TOPIC = "bench-java-producer"
VARIANTS = ("bare", "bare+headers", "stamping")


def classpath() -> str:
    """Library jar, test applications and Kafka jars; built by ``make java``."""
    jars = sorted(TARGET.glob("gapwatch-clients-*.jar"))
    deps = TARGET / "test-apps.classpath"
    if not jars or not deps.is_file():
        raise SystemExit("clients/java is not built: run `make java` first")
    return ":".join([str(jars[-1]), str(TARGET / "test-classes"), deps.read_text().strip()])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--value-bytes", type=int, default=100)
    args = parser.parse_args()
    java = shutil.which("java")
    if java is None:
        raise SystemExit("java is needed")
    cp = classpath()
    with KafkaCluster(nodes=1) as cluster:
        asyncio.run(cluster.create_topic(TOPIC, partitions=PARTITIONS, replication_factor=1))
        asyncio.run(cluster.create_topic(f"{TOPIC}-reports", partitions=1, replication_factor=1))
        command = [
            java,
            "-Xmx1g",
            "-cp",
            cp,
            "io.gapwatch.clients.apps.ProducerBench",
            *("--bootstrap", cluster.bootstrap_servers, "--topic", TOPIC),
            *("--report-topic", f"{TOPIC}-reports", "--partitions", str(PARTITIONS)),
            *("--records", str(args.records), "--rounds", str(args.rounds)),
            *("--threads", str(args.threads), "--value-bytes", str(args.value_bytes)),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        print(done.stderr[-4000:], file=sys.stderr)
        return 1
    runs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    for run in runs:
        print(
            f"round {run['round']} {run['variant']:>13}: {run['records_per_s']:9.0f} records/s, "
            f"{run['records_per_cpu_s']:9.0f} records/CPU-s",
            file=sys.stderr,
        )
    wall = {
        v: statistics.median(r["records_per_s"] for r in runs if r["variant"] == v)
        for v in VARIANTS
    }
    cpu = {
        v: statistics.median(r["records_per_cpu_s"] for r in runs if r["variant"] == v)
        for v in VARIANTS
    }
    print(
        f"records per run: {args.records}, rounds: {args.rounds}, sending threads: "
        f"{args.threads}, value bytes: {args.value_bytes}, "
        f"acks=all, linger.ms=5, batch.size=65536, {PARTITIONS} partitions"
    )
    for name in VARIANTS:
        print(f"{name:>13}: median {wall[name]:9.0f} records/s, {cpu[name]:9.0f} records/CPU-s")
    for label, medians in (("throughput", wall), ("client CPU", cpu)):
        full = medians["stamping"] / medians["bare"]
        own = medians["stamping"] / medians["bare+headers"]
        print(
            f"{label:>10}: stamping/bare = {full:.3f} (target >= 0.90), "
            f"stamping/bare+headers = {own:.3f} (target >= 0.97)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
