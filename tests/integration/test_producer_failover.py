"""An idempotent StampedProducer across a leader crash on the 3-node cluster."""

from __future__ import annotations

import asyncio

import pytest
from producer_support import latest_reports, read_stamped
from prometheus_client import CollectorRegistry

from gapwatch.producer import ReportConfig, StampedProducer
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.kafka

RECORDS = 1500


class TestIdempotentFailover:
    async def test_leader_killed_mid_stream_every_sequence_once(
        self, kafka3: KafkaCluster, make_topic: MakeTopic
    ) -> None:
        """With enable_idempotence=True, SIGKILL of the partition leader mid-stream leaves
        every sequence in the log exactly once, and the final report agrees with the log:
        assigned = acknowledged = the last sequence, failed = the sends that raised."""
        topic = await make_topic(kafka3, 1, 3, {"min.insync.replicas": "2"})
        report_topic = f"{topic}-reports"
        leader = (await kafka3.describe_partition(topic, 0)).leader
        assert leader is not None
        failed_seqs: list[int] = []
        try:
            async with StampedProducer(
                bootstrap_servers=kafka3.bootstrap_servers,
                enable_idempotence=True,
                request_timeout_ms=30_000,
                linger_ms=5,
                reports=ReportConfig(topic=report_topic, interval_s=0.5),
                registry=CollectorRegistry(),
            ) as producer:
                futures = []
                for i in range(RECORDS):
                    if i == RECORDS // 3:
                        assert kafka3.kill_node(leader)
                    futures.append(await producer.send(topic, b"%d" % i))
                    if i % 50 == 0:
                        await asyncio.sleep(0.02)  # a stream, not one burst
                outcomes = await asyncio.wait_for(
                    asyncio.gather(*futures, return_exceptions=True), 90
                )
                failed_seqs = [i for i, o in enumerate(outcomes) if isinstance(o, BaseException)]
            new_leader = (await kafka3.describe_partition(topic, 0)).leader
            assert new_leader not in (None, leader), "the leader did not move"
            records = await read_stamped(kafka3.bootstrap_servers, topic)
            reports = await latest_reports(kafka3.bootstrap_servers, report_topic)
        finally:
            await asyncio.to_thread(kafka3.restart_node, leader)

        seqs = [r.seq for r in records]
        assert len(seqs) == len(set(seqs)), "a sequence was written twice"
        assert sorted(seqs) == [s for s in range(RECORDS) if s not in failed_seqs]
        assert seqs == sorted(seqs), "sequences out of order in the log"
        # Values were sent in sequence order, so each record's value is its sequence.
        assert all(r.value == b"%d" % r.seq for r in records)
        report = reports[(topic, 0, producer.producer_id, producer.epoch)]
        assert report.final
        assert report.highest_assigned == RECORDS - 1
        assert report.highest_acked == max(seqs)
        assert [s for a, b in report.failed for s in range(a, b + 1)] == failed_seqs
