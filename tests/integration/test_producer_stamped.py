"""StampedProducer against a real broker: partitions, sequences, headers, outcomes, reports."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from producer_support import latest_reports, read_stamped, seqs_by_partition
from prometheus_client import CollectorRegistry

from gapwatch.producer import ReportConfig, StampedProducer, murmur2_partition
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.kafka

USER_HEADERS = [("trace-id", b"abc"), ("content-type", b"json"), ("trace-id", b"again")]


def _encode_key(key: str | None) -> bytes | None:
    # aiokafka calls the key serializer for key=None too; StampedProducer does the same.
    return None if key is None else key.encode()


def _reports(topic: str) -> ReportConfig:
    return ReportConfig(topic=f"{topic}-reports", interval_s=0.5, timeout_s=10)


class TestStamping:
    async def test_records_land_on_the_claimed_partition_in_sequence(
        self, kafka: KafkaCluster, make_topic: MakeTopic
    ) -> None:
        """Keyed, unkeyed and explicit-partition records: the partition the stamp belongs
        to is the one the record is in, sequences are contiguous from 0 per partition, and
        the caller's headers come first, unchanged and in order."""
        topic = await make_topic(partitions=3)
        async with StampedProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            producer_id="stamp-test",
            key_serializer=_encode_key,
            reports=_reports(topic),
            registry=CollectorRegistry(),
            linger_ms=2,
        ) as producer:
            futures = []
            for i in range(150):
                futures.append(await producer.send(topic, b"k", key=f"user-{i % 17}"))
                futures.append(await producer.send(topic, b"u", headers=USER_HEADERS))
                futures.append(await producer.send(topic, b"e", partition=1))
            await asyncio.gather(*futures)

        records = await read_stamped(kafka.bootstrap_servers, topic)
        assert len(records) == 450
        assert {(r.producer, r.epoch) for r in records} == {("stamp-test", producer.epoch)}
        for partition, seqs in seqs_by_partition(records).items():
            assert seqs == list(range(len(seqs))), f"partition {partition} out of sequence"
        for record in records:
            if record.value == b"k":
                assert record.key is not None
                assert record.partition == murmur2_partition(record.key, 3)
                assert len(record.headers) == 3
            if record.value == b"u":
                assert list(record.headers[:3]) == USER_HEADERS
            if record.value == b"e":
                assert record.partition == 1
        # Unkeyed records were spread, as aiokafka's random default does.
        assert len({r.partition for r in records if r.value == b"u"}) == 3

    async def test_final_reports_agree_with_the_log(
        self, kafka: KafkaCluster, make_topic: MakeTopic
    ) -> None:
        """After stop(), the control topic holds a final report per partition whose
        assigned and acknowledged marks equal the highest sequence in the log."""
        topic = await make_topic(partitions=2)
        registry = CollectorRegistry()
        async with StampedProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            reports=_reports(topic),
            registry=registry,
        ) as producer:
            for i in range(40):
                await producer.send_and_wait(topic, b"v", partition=i % 2)
        records = await read_stamped(kafka.bootstrap_servers, topic)
        reports = await latest_reports(kafka.bootstrap_servers, f"{topic}-reports")
        for partition, seqs in seqs_by_partition(records).items():
            report = reports[(topic, partition, producer.producer_id, producer.epoch)]
            assert report.final
            assert report.highest_assigned == report.highest_acked == max(seqs) == 19
            assert report.failed == ()
        published = registry.get_sample_value(
            "gapwatch_producer_reports_published_total", {"topic": topic}
        )
        assert published is not None
        assert published >= 2
        assert (
            registry.get_sample_value(
                "gapwatch_producer_records_acknowledged_total", {"topic": topic}
            )
            == 40
        )

    async def test_restart_bumps_the_epoch_and_restarts_sequences(
        self, kafka: KafkaCluster, make_topic: MakeTopic
    ) -> None:
        """Two lives of one producer id: the second has a greater epoch and starts at 0."""
        topic = await make_topic(partitions=1)
        epochs = []
        for _ in range(2):
            async with StampedProducer(
                bootstrap_servers=kafka.bootstrap_servers,
                producer_id="restarting-service",
                reports=None,
                registry=None,
            ) as producer:
                for _ in range(5):
                    await producer.send_and_wait(topic, b"v")
            epochs.append(producer.epoch)
        assert epochs[1] > epochs[0]
        records = await read_stamped(kafka.bootstrap_servers, topic)
        assert [(r.epoch, r.seq) for r in records] == [
            (epoch, seq) for epoch in epochs for seq in range(5)
        ]

    async def test_acks0_reports_nothing_acknowledged(
        self, kafka: KafkaCluster, make_topic: MakeTopic
    ) -> None:
        """With acks=0 records arrive, yet the final report says nothing was acknowledged."""
        topic = await make_topic(partitions=1)
        registry = CollectorRegistry()
        async with StampedProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            acks=0,
            reports=_reports(topic),
            registry=registry,
        ) as producer:
            for _ in range(10):
                await producer.send(topic, b"v")
        assert producer.acks == "0"
        records = await read_stamped(kafka.bootstrap_servers, topic)
        assert [r.seq for r in records] == list(range(10))
        reports = await latest_reports(kafka.bootstrap_servers, f"{topic}-reports")
        report = reports[(topic, 0, producer.producer_id, producer.epoch)]
        assert (report.highest_assigned, report.highest_acked, report.final) == (9, None, True)
        assert (
            registry.get_sample_value(
                "gapwatch_producer_records_sent_unacknowledged_total", {"topic": topic}
            )
            == 10
        )

    async def test_a_send_that_raised_is_a_failed_sequence(
        self, kafka: KafkaCluster, make_topic: MakeTopic
    ) -> None:
        """A send refused before enqueue uses up its sequence, which is reported failed
        (the application got the error) while later records carry on."""
        topic = await make_topic(partitions=1)
        async with StampedProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            max_request_size=2000,
            reports=_reports(topic),
            registry=CollectorRegistry(),
        ) as producer:
            await producer.send_and_wait(topic, b"small")
            with pytest.raises(MessageSizeTooLargeError):
                await producer.send(topic, b"x" * 5000)
            await producer.send_and_wait(topic, b"small")
        records = await read_stamped(kafka.bootstrap_servers, topic)
        assert [r.seq for r in records] == [0, 2]
        reports = await latest_reports(kafka.bootstrap_servers, f"{topic}-reports")
        report = reports[(topic, 0, producer.producer_id, producer.epoch)]
        assert report.failed == ((1, 1),)
        assert (report.highest_assigned, report.highest_acked) == (2, 2)

    async def test_send_batch_stamps_consecutive_sequences(
        self, kafka: KafkaCluster, make_topic: MakeTopic
    ) -> None:
        """create_batch/send_batch stamp records in append order, after earlier sends."""
        topic = await make_topic(partitions=1)
        async with StampedProducer(
            bootstrap_servers=kafka.bootstrap_servers, reports=None, registry=None
        ) as producer:
            await producer.send_and_wait(topic, b"first")
            batch = producer.create_batch()
            for i in range(5):
                assert (
                    batch.append(timestamp=None, key=None, value=b"b%d" % i, headers=USER_HEADERS)
                    is not None
                )
            batch.close()
            await (await producer.send_batch(batch, topic, partition=0))
            await producer.send_and_wait(topic, b"last")
            (report,) = producer.reports()
        records = await read_stamped(kafka.bootstrap_servers, topic)
        assert [(r.value, r.seq) for r in records] == [
            (b"first", 0),
            *((b"b%d" % i, i + 1) for i in range(5)),
            (b"last", 6),
        ]
        assert all(list(r.headers[:3]) == USER_HEADERS for r in records[1:6])
        assert (report.highest_assigned, report.highest_acked) == (6, 6)


class TestOrdering:
    @pytest.mark.parametrize("direct_enqueue", [True, False], ids=["direct", "public-send"])
    async def test_concurrent_senders_keep_each_partition_contiguous(
        self, kafka: KafkaCluster, make_topic: MakeTopic, direct_enqueue: bool
    ) -> None:
        """Many tasks sending to the same partitions with tiny batches (so aiokafka's
        send() awaits a drain): every partition still holds 0, 1, 2, ... in log order,
        both on the direct enqueue path and on the AIOKafkaProducer.send() fallback."""
        topic = await make_topic(partitions=2)
        async with StampedProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            max_batch_size=300,  # about two 100-byte records per batch
            linger_ms=0,
            reports=None,
            registry=None,
            direct_enqueue=direct_enqueue,
        ) as producer:
            # aiokafka 0.14: the direct path unless turned off
            assert producer.enqueues_directly is direct_enqueue
            futures: list[asyncio.Future[object]] = []

            async def sender(task: int) -> None:
                for i in range(40):
                    futures.append(await producer.send(topic, bytes(100), key=b"%d-%d" % (task, i)))

            await asyncio.wait_for(asyncio.gather(*(sender(t) for t in range(50))), 60)
            await asyncio.gather(*futures)
        records = await read_stamped(kafka.bootstrap_servers, topic)
        assert len(records) == 2000
        by_partition = seqs_by_partition(records)
        assert set(by_partition) == {0, 1}
        for seqs in by_partition.values():
            assert seqs == list(range(len(seqs)))

    async def test_cancelled_waiter_uses_no_sequence(
        self, kafka: KafkaCluster, make_topic: MakeTopic
    ) -> None:
        """A send cancelled while waiting for its partition's turn consumes no sequence;
        one cancelled after taking its sequence is booked failed, never skipped."""
        topic = await make_topic(partitions=1)
        async with StampedProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            max_batch_size=200,
            linger_ms=200,  # batches sit long enough for senders to pile up
            reports=None,
            registry=None,
        ) as producer:
            tasks = [asyncio.create_task(producer.send(topic, bytes(150))) for _ in range(6)]
            await asyncio.sleep(0.05)
            for task in tasks[2:]:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            delivered = [r for r in results if isinstance(r, asyncio.Future)]
            await asyncio.gather(*delivered)
            (report,) = producer.reports()
        records = await read_stamped(kafka.bootstrap_servers, topic)
        seqs = [r.seq for r in records]
        failed = {s for a, b in report.failed for s in range(a, b + 1)}
        assert report.highest_assigned is not None
        # Every assigned sequence is either in the log or booked failed, exactly once.
        assert sorted(seqs + sorted(failed)) == list(range(report.highest_assigned + 1))
        assert len(seqs) == len(delivered)
