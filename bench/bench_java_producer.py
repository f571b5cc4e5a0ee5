"""StampingProducer (clients/java) throughput and client CPU against a bare KafkaProducer.

Starts a 1-node cluster (gapwatch.testing.kafka), then per value size one JVM
(``io.gapwatch.clients.apps.ProducerBench``, built by ``make java``) that sends the same
keyed records (100 and 1000 value bytes by default) to one 6-partition topic with the
same settings (``acks=all``, idempotence on, ``linger.ms=5``, ``batch.size=65536``)
through three producers, in rotating order, several rounds:

* ``bare``:         KafkaProducer, no headers (target StampingProducer >= 0.90 of it);
* ``bare+headers``: KafkaProducer with the three headers added by the caller, as
                    docs/wire-format.md shows (target >= 0.97);
* ``stamping``:     StampingProducer, producer reports on.

Every variant runs once untimed first (JIT). For each value size (one JVM per size, one
cluster for all) it prints the medians of records per wall-clock second, per second of the
JVM's CPU time (all its threads) and per second of the sending threads' CPU time (what
``send`` costs its caller, where the wrapper does its work), and the ratios of those
medians. On 2 shared cores the broker shares the CPU with the client, so wall-clock
throughput is the noisiest figure and client CPU per record the one to judge by.

Run: ``.venv/bin/python bench/bench_java_producer.py [--records N] [--rounds R] [--threads T]
[--value-bytes B[,B...]]``
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


MEASURES = (
    ("records_per_s", "throughput"),
    ("records_per_cpu_s", "JVM CPU"),
    ("records_per_send_cpu_s", "send CPU"),
)


def run_size(
    cp: str, java: str, bootstrap: str, args: argparse.Namespace, value_bytes: int
) -> bool:
    """One JVM: every variant, ``args.rounds`` rounds, values of ``value_bytes``; print medians."""
    command = [
        java,
        "-Xms1g",
        "-Xmx1g",
        "-cp",
        cp,
        "io.gapwatch.clients.apps.ProducerBench",
        *("--bootstrap", bootstrap, "--topic", TOPIC),
        *("--report-topic", f"{TOPIC}-reports", "--partitions", str(PARTITIONS)),
        *("--records", str(args.records), "--rounds", str(args.rounds)),
        *("--threads", str(args.threads), "--value-bytes", str(value_bytes)),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        print(done.stderr[-4000:], file=sys.stderr)
        return False
    runs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    for run in runs:
        print(
            f"round {run['round']} {run['variant']:>13}: {run['records_per_s']:9.0f} records/s, "
            f"{run['records_per_cpu_s']:9.0f} records/CPU-s, "
            f"{run['records_per_send_cpu_s']:9.0f} records/send-CPU-s",
            file=sys.stderr,
        )
    medians = {
        key: {v: statistics.median(r[key] for r in runs if r["variant"] == v) for v in VARIANTS}
        for key, _ in MEASURES
    }
    print(
        f"value bytes: {value_bytes}, records per run: {args.records}, rounds: {args.rounds}, "
        f"sending threads: {args.threads}, acks=all, linger.ms=5, batch.size=65536, "
        f"{PARTITIONS} partitions"
    )
    for name in VARIANTS:
        print(
            f"{name:>13}: median {medians['records_per_s'][name]:9.0f} records/s, "
            f"{1e9 / medians['records_per_cpu_s'][name]:6.0f} ns JVM CPU/record, "
            f"{1e9 / medians['records_per_send_cpu_s'][name]:6.0f} ns send CPU/record"
        )
    for key, label in MEASURES:
        full = medians[key]["stamping"] / medians[key]["bare"]
        own = medians[key]["stamping"] / medians[key]["bare+headers"]
        print(
            f"{label:>10}: stamping/bare = {full:.3f} (target >= 0.90), "
            f"stamping/bare+headers = {own:.3f} (target >= 0.97)"
        )
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--value-bytes", default="100,1000", help="comma-separated sizes")
    args = parser.parse_args()
    sizes = [int(size) for size in args.value_bytes.split(",")]
    java = shutil.which("java")
    if java is None:
        raise SystemExit("java is needed")
    cp = classpath()
    with KafkaCluster(nodes=1) as cluster:
        asyncio.run(cluster.create_topic(TOPIC, partitions=PARTITIONS, replication_factor=1))
        asyncio.run(cluster.create_topic(f"{TOPIC}-reports", partitions=1, replication_factor=1))
        for value_bytes in sizes:
            if not run_size(cp, java, cluster.bootstrap_servers, args, value_bytes):
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
