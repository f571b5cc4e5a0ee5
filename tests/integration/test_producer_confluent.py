"""A confluent-kafka producer stamped with Stamper, read back by a plain aiokafka consumer."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest
from confluent_kafka import Producer
from producer_support import read_all, read_stamped, seqs_by_partition

from gapwatch.core.report_codec import decode_report
from gapwatch.core.wire import HEADER_EPOCH, HEADER_PRODUCER, HEADER_SEQ
from gapwatch.producer import Stamper, murmur2_partition
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.kafka

PARTITIONS = 3


class TestConfluentKafkaWithStamper:
    async def test_stamped_records_and_reports_read_back(
        self, kafka: KafkaCluster, make_topic: MakeTopic
    ) -> None:
        """Headers are correct and in sequence per partition, delivery callbacks feed the
        stamper, and its report records decode from the control topic."""
        topic = await make_topic(partitions=PARTITIONS)
        report_topic = await make_topic(partitions=1)
        stamper = Stamper(producer_id="confluent-app", acks="all", registry=None)
        producer = Producer(
            {"bootstrap.servers": kafka.bootstrap_servers, "acks": "all", "linger.ms": 5}
        )

        def on_delivery(seq: int, err: Any, msg: Any) -> None:
            # Delivery reports do not carry headers: the sequence is bound when producing.
            stamper.record_outcome(msg.topic(), msg.partition(), seq, err)

        sent: list[tuple[bytes, int, int]] = []
        for i in range(60):
            key = b"order-%d" % (i % 11)
            # librdkafka's default partitioner differs from Java's: choose it ourselves.
            partition = murmur2_partition(key, PARTITIONS)
            seq, headers = stamper.stamp(topic, partition, [("app", b"1")])
            producer.produce(
                topic,
                b"v",
                key=key,
                partition=partition,
                headers=headers,
                on_delivery=functools.partial(on_delivery, seq),
            )
            sent.append((key, partition, seq))
        assert await asyncio.to_thread(producer.flush, 30) == 0
        for key, value in stamper.report_records(final=True):
            producer.produce(report_topic, value, key=key)
        assert await asyncio.to_thread(producer.flush, 30) == 0
        producer.close()

        records = await read_stamped(kafka.bootstrap_servers, topic)
        assert sorted((r.key, r.partition, r.seq) for r in records) == sorted(sent)
        for partition, seqs in seqs_by_partition(records).items():
            assert seqs == list(range(len(seqs))), partition
        for record in records:
            assert [name for name, _ in record.headers] == [
                "app",
                HEADER_PRODUCER,
                HEADER_EPOCH,
                HEADER_SEQ,
            ]
            assert (record.producer, record.epoch) == ("confluent-app", stamper.epoch)

        reports = [
            decode_report(v)
            for _, _, _, v, _ in await read_all(kafka.bootstrap_servers, report_topic)
        ]
        by_partition = {r.partition: r for r in reports}
        assert set(by_partition) == {r.partition for r in records}
        for partition, seqs in seqs_by_partition(records).items():
            report = by_partition[partition]
            assert report.final
            assert report.highest_assigned == report.highest_acked == len(seqs) - 1
            assert report.failed == ()
