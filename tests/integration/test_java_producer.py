"""The JVM client (``clients/java``) against real Kafka and a real ``gapwatch monitor``.

The Java test applications (``clients/java/src/test/java/io/gapwatch/clients/apps``) run
in their own JVM with the library jar; the log is read back with a plain consumer and the
monitor is read over HTTP, as a user would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections import defaultdict
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from java_support import findings, java_classpath, run_java_app
from monitor_support import metric_value, monitor_config, start_monitor
from producer_support import ReadRecord, latest_reports, read_all, read_stamped

from gapwatch.core.report_codec import decode_report, encode_report_key
from gapwatch.core.wire import parse_stamp
from gapwatch.monitor.app import RunningMonitor
from gapwatch.monitor.config import ReportSettings
from gapwatch.producer import StampedProducer, murmur2_partition
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.kafka

PARTITIONS = 6
GRACE_S = 1.0
# The fields every report carries, in the order gapwatch.core.report_codec writes them.
REPORT_FIELDS = (
    "v",
    "producer",
    "epoch",
    "topic",
    "partition",
    "assigned",
    "acked",
    "failed",
    "final",
)


@pytest.fixture(scope="module")
def classpath() -> str:
    """The Java test applications' classpath (built by ``make java``, else here)."""
    return java_classpath()


def streams_in_log(records: list[ReadRecord]) -> dict[tuple[int, str, int], list[int]]:
    """Sequences of each (partition, producer, epoch) stream, in offset order."""
    out: defaultdict[tuple[int, str, int], list[int]] = defaultdict(list)
    for record in records:
        out[(record.partition, record.producer, record.epoch)].append(record.seq)
    return dict(out)


async def settled_monitor(
    cluster: KafkaCluster, topic: str, report_topic: str, end_offsets: dict[int, int]
) -> RunningMonitor:
    """A monitor of ``topic`` (reading reports from ``report_topic``) that has read every
    partition to ``end_offsets``, has no open gap, and waited one more grace period."""
    config = monitor_config(cluster.bootstrap_servers, [topic], f"g-{topic}", grace_period=GRACE_S)
    config = dataclasses.replace(config, reports=ReportSettings(topic=report_topic, enabled=True))
    monitor = await start_monitor(config)
    deadline = time.monotonic() + 90
    last: Any = None
    while time.monotonic() < deadline:
        gaps, partitions, _ = await findings(monitor, topic)
        positions = {p["partition"]: p["position"] for p in partitions}
        last = (positions, [g for g in gaps if g["state"] == "open"])
        if positions == end_offsets and not last[1]:
            break
        await asyncio.sleep(0.3)
    else:
        await monitor.stop()
        raise AssertionError(f"monitor did not settle: {last}")
    await asyncio.sleep(GRACE_S + 1.0)
    return monitor


def end_offsets_of(records: list[ReadRecord]) -> dict[int, int]:
    """Each partition's log end, from a complete read-back."""
    ends: dict[int, int] = {p: 0 for p in range(PARTITIONS)}
    for record in records:
        ends[record.partition] = max(ends[record.partition], record.offset + 1)
    return ends


class TestStampingProducer:
    async def test_eight_threads_100k_records_arrive_numbered_in_order(
        self, kafka: KafkaCluster, make_topic: MakeTopic, classpath: str
    ) -> None:
        """8 threads share one StampingProducer (acks=all) for 100,000 records: every stream
        in the log reads 0, 1, 2, ... in offset order, keyed records sit where Kafka's key
        hashing puts them, the report topic is created as the Python side creates it, and the
        monitor finds no gap and no duplicate and accepts every report."""
        topic = await make_topic(partitions=PARTITIONS)
        report_topic = f"{topic}-reports"  # missing: the Java producer creates it
        lines = await run_java_app(
            classpath,
            "LoadApp",
            *("--bootstrap", kafka.bootstrap_servers, "--topic", topic),
            *("--records", "100000", "--threads", "8", "--acks", "all"),
            *("--producer-id", "java-load", "--report-topic", report_topic),
        )
        done = lines[-1]
        assert done["event"] == "done"
        assert done["acked"] == 100_000
        assert done["failed"] == 0
        assert done["reports_published"] >= PARTITIONS
        assert done["reports_failed"] == 0

        records = await read_stamped(kafka.bootstrap_servers, topic, timeout_s=60)
        assert len(records) == 100_000
        epoch = int(done["epoch"])
        streams = streams_in_log(records)
        assert {(producer, e) for _, producer, e in streams} == {("java-load", epoch)}
        assert {p for p, _, _ in streams} == set(range(PARTITIONS))
        for stream, seqs in streams.items():
            assert seqs == list(range(len(seqs))), stream
        keyed = [r for r in records if r.key is not None]
        assert len(keyed) == 50_000
        assert all(r.partition == murmur2_partition(r.key, PARTITIONS) for r in keyed if r.key)

        reports = await latest_reports(kafka.bootstrap_servers, report_topic)
        for (_, partition, _, _), report in reports.items():
            sent = len(streams[(partition, "java-load", epoch)])
            assert (report.highest_assigned, report.highest_acked) == (sent - 1, sent - 1)
            assert report.failed == ()
            assert report.final
        assert {tp[1] for tp in reports} == set(range(PARTITIONS))
        raw = [(k, v) for _, _, k, v, _ in await read_all(kafka.bootstrap_servers, report_topic)]
        for key, value in raw:
            assert value is not None
            body = json.loads(value)
            # Byte for byte what Python's encoder writes for the same fields and order.
            assert json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode() == value
            assert list(body) == [*REPORT_FIELDS, "acks", "idempotence", "sent_at_ms"]
            assert (body["acks"], body["idempotence"]) == ("all", True)
            assert key == encode_report_key(decode_report(value))
        assert await report_topic_settings(kafka, report_topic) == (3, "compact,delete")

        monitor = await settled_monitor(kafka, topic, report_topic, end_offsets_of(records))
        try:
            gaps, partitions, metrics = await findings(monitor, topic)
            assert gaps == []
            assert sum(p["position"] for p in partitions) == 100_000
            for partition in range(PARTITIONS):
                labels = {"topic": topic, "partition": str(partition)}
                assert metric_value(metrics, "gapwatch_duplicate_records_total", **labels) == 0
                assert metric_value(metrics, "gapwatch_missing_records_total", **labels) == 0
            assert metric_value(metrics, "gapwatch_producer_reports_read_total") >= PARTITIONS
            assert metric_value(metrics, "gapwatch_producer_reports_malformed_total") == 0
        finally:
            await monitor.stop()

    async def test_dropped_records_are_exactly_the_gaps_and_told_ones_say_so(
        self, kafka: KafkaCluster, make_topic: MakeTopic, classpath: str
    ) -> None:
        """The application drops 10 chosen stamped records (never sent; 5 failed at once so
        it is told, 5 answered as acknowledged: a silent loss). The monitor confirms exactly
        those 10 sequences, ``producer_told`` exactly where the producer's reports list them
        as failed, which is where the application logged being told."""
        topic = await make_topic(partitions=PARTITIONS)
        report_topic = await make_topic(partitions=1)
        chosen = [
            (0, 150, False),
            (0, 900, True),
            (1, 333, True),
            (1, 1450, True),
            (2, 1200, False),
            (3, 42, True),
            (3, 1400, False),
            (4, 777, False),
            (5, 10, True),
            (5, 1300, False),
        ]
        spec = ",".join(f"{p}:{s}:{'told' if told else 'silent'}" for p, s, told in chosen)
        lines = await run_java_app(
            classpath,
            "LoadApp",
            *("--bootstrap", kafka.bootstrap_servers, "--topic", topic),
            *("--records", "15000", "--threads", "8", "--acks", "all"),
            *("--producer-id", "java-drop", "--report-topic", report_topic, "--drop", spec),
        )
        done = lines[-1]
        logged = {(d["partition"], d["seq"], d["told"]) for d in lines if d["event"] == "dropped"}
        assert logged == set(chosen)
        assert done["failed"] == 5
        assert done["acked"] == 15_000 - 5

        epoch = int(done["epoch"])
        records = await read_stamped(kafka.bootstrap_servers, topic, timeout_s=60)
        streams = streams_in_log(records)
        dropped_by_partition: defaultdict[int, set[int]] = defaultdict(set)
        for partition, seq, _ in chosen:
            dropped_by_partition[partition].add(seq)
        for (partition, _, _), seqs in streams.items():
            high = seqs[-1]
            assert high > max(dropped_by_partition[partition]), "drops are interior"
            expected = [s for s in range(high + 1) if s not in dropped_by_partition[partition]]
            assert seqs == expected, partition

        reports = await latest_reports(kafka.bootstrap_servers, report_topic)
        failed_in_reports = {
            (partition, seq)
            for (_, partition, _, _), report in reports.items()
            for first, last in report.failed
            for seq in range(first, last + 1)
        }
        assert failed_in_reports == {(p, s) for p, s, told in chosen if told}

        monitor = await settled_monitor(kafka, topic, report_topic, end_offsets_of(records))
        try:
            gaps, _, _ = await findings(monitor, topic)
            confirmed = {
                (g["partition"], g["producer"], g["epoch"], g["first_seq"], g["last_seq"])
                for g in gaps
                if g["state"] == "confirmed"
            }
            assert confirmed == {(p, "java-drop", epoch, s, s) for p, s, _ in chosen}
            assert len(gaps) == len(chosen), gaps
            told = {(g["partition"], g["first_seq"]): g["producer_told"] for g in gaps}
            assert told == {(p, s): (p, s) in failed_in_reports for p, s, _ in chosen}
        finally:
            await monitor.stop()


class TestStreamsClientSupplier:
    async def test_streams_output_is_stamped_and_complete(
        self, kafka: KafkaCluster, make_topic: MakeTopic, classpath: str
    ) -> None:
        """A Kafka Streams application with ``default.client.supplier`` set to the stamping
        supplier re-keys stamped input through a repartition topic to its output: every
        output record carries one stamp, of the application's own producers (the input's
        stamp replaced), numbered 0, 1, 2, ... per stream; the internal repartition topic is
        not stamped by it; the monitor sees complete streams and accepts the reports."""
        input_topic = await make_topic(partitions=3)
        output_topic = await make_topic(partitions=PARTITIONS)
        report_topic = await make_topic(partitions=1)
        app_id = f"app-{output_topic}"
        count = 3000
        producer = StampedProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            producer_id="py-input",
            reports=None,
            registry=None,
            acks="all",
        )
        await producer.start()
        try:
            for i in range(count):
                await producer.send(input_topic, b"order-%d" % i, key=b"k-%d" % (i % 50))
            await producer.flush()
        finally:
            await producer.stop()

        lines = await run_java_app(
            classpath,
            "StreamsApp",
            *("--bootstrap", kafka.bootstrap_servers, "--app-id", app_id),
            *("--input", input_topic, "--output", output_topic),
            *("--producer-id", "java-streams", "--report-topic", report_topic),
            *("--expect", str(count)),
        )
        assert lines[-1]["event"] == "done"
        # At-least-once: a rebalance may reprocess a few records; none may be missing.
        assert lines[-1]["processed"] >= count

        records = await read_stamped(kafka.bootstrap_servers, output_topic, timeout_s=60)
        assert len(records) >= count
        assert {r.value for r in records} == {b"ORDER-%d" % i for i in range(count)}
        streams = streams_in_log(records)
        assert all(producer.startswith("java-streams/") for _, producer, _ in streams), (
            streams.keys()
        )
        for stream, seqs in streams.items():
            assert seqs == list(range(len(seqs))), stream
        for record in records:
            names = [name for name, _ in record.headers]
            assert names.count("gapwatch-seq") == 1, names

        repartitioned = await read_all(kafka.bootstrap_servers, f"{app_id}-rekey-repartition")
        assert len(repartitioned) >= count
        for *_, headers in repartitioned:
            stamp = parse_stamp(headers)
            # Streams copies the input's headers; the supplier adds none of its own.
            assert stamp is not None
            assert stamp.producer == "py-input"

        ends = {p: 0 for p in range(PARTITIONS)}
        for record in records:
            ends[record.partition] = max(ends[record.partition], record.offset + 1)
        monitor = await settled_monitor(kafka, output_topic, report_topic, ends)
        try:
            gaps, _, metrics = await findings(monitor, output_topic)
            assert gaps == []
            for partition in range(PARTITIONS):
                labels = {"topic": output_topic, "partition": str(partition)}
                assert metric_value(metrics, "gapwatch_duplicate_records_total", **labels) == 0
            assert metric_value(metrics, "gapwatch_producer_reports_read_total") >= len(streams)
            assert metric_value(metrics, "gapwatch_producer_reports_malformed_total") == 0
        finally:
            await monitor.stop()
        reports = await latest_reports(kafka.bootstrap_servers, report_topic)
        for (_, partition, producer_id, epoch), report in reports.items():
            sent = len(streams[(partition, producer_id, epoch)])
            assert report.final
            assert (report.highest_assigned, report.highest_acked) == (sent - 1, sent - 1)


async def report_topic_settings(cluster: KafkaCluster, topic: str) -> tuple[int, str]:
    """(partition count, cleanup.policy) of a topic, read with the admin API."""
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
        partitions = len(described[0]["partitions"])
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"cleanup.policy": None})
        response = (await admin.describe_configs([resource]))[0]
        policy = next(
            entry[1]
            for *_, entries in [r[:5] for r in response.resources]
            for entry in entries
            if entry[0] == "cleanup.policy"
        )
        return partitions, policy
    finally:
        await admin.close()
