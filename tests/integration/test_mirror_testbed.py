"""The mirror test bed is a real MirrorMaker 2: what it copies, keeps, skips and repeats.

Every test runs MirrorMaker from the session's ``kafka`` cluster to ``mirror_target``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from gapwatch.core.wire import encode_stamp
from gapwatch.testing.kafka import KafkaCluster, topic_partitions
from gapwatch.testing.mirror import Mirror, MirrorError
from gapwatch.testing.pytest_plugin import MakeMirror, MakeTopic

pytestmark = pytest.mark.kafka

# A record as MirrorMaker must keep it: partition, timestamp, key, value, headers.
Fingerprint = tuple[int, int, bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]

# An hour ago: a broker-assigned timestamp could not be mistaken for it, and it is well
# within the topics' time retention (7 days), which the broker applies to record timestamps:
# records stamped further back are deleted at its next retention check.
_BASE_TIMESTAMP_MS = int(time.time() * 1000) - 3_600_000


async def _produce_stamped(
    bootstrap: str, topic: str, seqs: range, *, partitions: int = 1
) -> list[Fingerprint]:
    """Stamped records (the three gapwatch headers) with explicit timestamps, spread over
    ``partitions`` by sequence number; what was written, as fingerprints."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    sent: list[Fingerprint] = []
    try:
        for seq in seqs:
            partition = seq % partitions
            headers = encode_stamp("mirror-test", 1, seq)
            key, value = f"k{seq}".encode(), f"v{seq}".encode()
            timestamp = _BASE_TIMESTAMP_MS + seq * 1000
            await producer.send_and_wait(
                topic,
                value,
                key=key,
                partition=partition,
                timestamp_ms=timestamp,
                headers=headers,
            )
            sent.append((partition, timestamp, key, value, tuple(headers)))
    finally:
        await producer.stop()
    return sent


async def _read_all(bootstrap: str, topic: str) -> list[Fingerprint]:
    """Every record of ``topic`` now, partition by partition, as fingerprints."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    records: list[Fingerprint] = []
    try:
        partitions = await topic_partitions(bootstrap, topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=10_000)
                assert batch, f"no records from {tp} below its end offset {ends[tp]}"
                records.extend(
                    (
                        r.partition,
                        r.timestamp,
                        r.key,
                        r.value,
                        tuple((n, bytes(v)) for n, v in r.headers),
                    )
                    for r in batch[tp]
                )
    finally:
        await consumer.stop()
    return records


class TestCopying:
    async def test_stamped_records_keep_headers_partition_and_timestamp(
        self,
        kafka: KafkaCluster,
        mirror_target: KafkaCluster,
        make_topic: MakeTopic,
        make_mirror: MakeMirror,
    ) -> None:
        """Records with the three gapwatch headers arrive on ALIAS.topic unchanged: same
        partition, timestamp, key, value and headers, each exactly once."""
        topic = await make_topic(partitions=3)
        mirror = make_mirror(topic)
        sent = await _produce_stamped(kafka.bootstrap_servers, topic, range(30), partitions=3)
        await mirror.wait_caught_up(topic)
        remote = mirror.remote_topic(topic)
        assert remote == f"{mirror.settings.source_alias}.{topic}"
        received = await _read_all(mirror_target.bootstrap_servers, remote)
        assert sorted(received) == sorted(sent)

    async def test_identity_policy_keeps_the_topic_name(
        self,
        kafka: KafkaCluster,
        mirror_target: KafkaCluster,
        make_topic: MakeTopic,
        make_mirror: MakeMirror,
    ) -> None:
        """With the identity replication policy the target topic has the source's name."""
        topic = await make_topic(partitions=1)
        mirror = make_mirror(topic, replication_policy="identity")
        assert mirror.remote_topic(topic) == topic
        sent = await _produce_stamped(kafka.bootstrap_servers, topic, range(5))
        await mirror.wait_caught_up(topic)
        assert await _read_all(mirror_target.bootstrap_servers, topic) == sent


class TestLifecycle:
    async def test_stop_start_and_kill_lose_nothing(
        self,
        kafka: KafkaCluster,
        mirror_target: KafkaCluster,
        make_topic: MakeTopic,
        make_mirror: MakeMirror,
    ) -> None:
        """Records written while MirrorMaker was stopped or killed arrive once it runs again;
        a graceful stop stores its offsets, so nothing before it is copied twice."""
        topic = await make_topic(partitions=2)
        mirror = make_mirror(topic)
        source = kafka.bootstrap_servers
        sent = await _produce_stamped(source, topic, range(0, 10), partitions=2)
        await mirror.wait_caught_up(topic)

        assert mirror.stop()
        assert not mirror.is_running()
        sent += await _produce_stamped(source, topic, range(10, 20), partitions=2)
        mirror.launch()
        await mirror.wait_copying()
        await mirror.wait_caught_up(topic)
        received = await _read_all(mirror_target.bootstrap_servers, mirror.remote_topic(topic))
        assert sorted(received) == sorted(sent)

        assert mirror.kill()
        assert not mirror.is_running()
        sent += await _produce_stamped(source, topic, range(20, 30), partitions=2)
        mirror.launch()
        await mirror.wait_copying()
        await mirror.wait_caught_up(topic)
        received = await _read_all(mirror_target.bootstrap_servers, mirror.remote_topic(topic))
        assert set(received) == set(sent)

    async def test_kill_with_offsets_stored_long_ago_copies_records_twice(
        self,
        kafka: KafkaCluster,
        mirror_target: KafkaCluster,
        make_topic: MakeTopic,
        make_mirror: MakeMirror,
    ) -> None:
        """With a 10-minute offset flush interval, SIGKILL loses every offset MirrorMaker
        copied since it started: after a restart it copies those records again."""
        topic = await make_topic(partitions=1)
        mirror = make_mirror(topic, offset_flush_interval_ms=600_000)
        sent = await _produce_stamped(kafka.bootstrap_servers, topic, range(10))
        await mirror.wait_caught_up(topic)
        assert mirror.kill()
        mirror.launch()
        await mirror.wait_copying()
        sent += await _produce_stamped(kafka.bootstrap_servers, topic, range(10, 12))
        await mirror.wait_caught_up(topic)
        received = await _read_all(mirror_target.bootstrap_servers, mirror.remote_topic(topic))
        counts = Counter(received)
        assert set(counts) == set(sent)
        assert all(counts[record] == 2 for record in sent[:10]), counts
        assert all(counts[record] == 1 for record in sent[10:]), counts


class TestForgettingAndRetention:
    async def test_forget_with_latest_skips_records_written_while_stopped(
        self,
        kafka: KafkaCluster,
        mirror_target: KafkaCluster,
        make_topic: MakeTopic,
        make_mirror: MakeMirror,
    ) -> None:
        """Stored offsets deleted, restarted at latest: the records written while it was
        stopped are on the source but never reach the target; later ones do."""
        topic = await make_topic(partitions=1)
        mirror = make_mirror(topic)
        source = kafka.bootstrap_servers
        before = await _produce_stamped(source, topic, range(0, 5))
        await mirror.wait_caught_up(topic)
        with pytest.raises(MirrorError, match="needs MirrorMaker stopped"):
            await mirror.forget()
        assert mirror.stop()
        skipped = await _produce_stamped(source, topic, range(5, 10))
        assert await mirror.forget()
        mirror.launch(offset_reset="latest")
        await mirror.wait_copying()
        after = await _produce_stamped(source, topic, range(10, 15))
        await mirror.wait_caught_up(topic)
        assert await _read_all(mirror_target.bootstrap_servers, mirror.remote_topic(topic)) == (
            before + after
        )
        assert await _read_all(source, topic) == before + skipped + after

    async def test_log_start_moved_past_unread_records_resets_to_earliest(
        self,
        kafka: KafkaCluster,
        mirror_target: KafkaCluster,
        make_topic: MakeTopic,
        make_mirror: MakeMirror,
    ) -> None:
        """Records deleted on the source before MirrorMaker read them are gone for good: it
        resumes at the new log start, and copies everything from there on."""
        topic = await make_topic(partitions=1)
        mirror = make_mirror(topic)
        source = kafka.bootstrap_servers
        before = await _produce_stamped(source, topic, range(0, 5))
        await mirror.wait_caught_up(topic)
        assert mirror.stop()
        unread = await _produce_stamped(source, topic, range(5, 15))
        assert await mirror.delete_source_records(topic, 0, 10) == 10
        mirror.launch()
        await mirror.wait_copying()
        await mirror.wait_caught_up(topic)
        assert await _read_all(mirror_target.bootstrap_servers, mirror.remote_topic(topic)) == (
            before + unread[5:]
        )


class TestCommandLine:
    def test_up_down_and_up_again_with_new_flags(
        self, kafka: KafkaCluster, mirror_target: KafkaCluster, tmp_path: Path
    ) -> None:
        """``up`` returns once MirrorMaker copies, ``down`` stops it, and ``up`` on the same
        state dir starts it again with the new flags."""
        state = tmp_path / "mm2"

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "gapwatch.testing.mirror", *args],
                capture_output=True,
                text=True,
                timeout=240,
                env=os.environ.copy(),
                check=False,
            )

        common = [
            "--source", kafka.bootstrap_servers,
            "--target", mirror_target.bootstrap_servers,
            "--topics", "gw-cli-never-created",
            "--state-dir", str(state),
        ]  # fmt: skip
        try:
            first = cli("up", "--source-alias", "cli-a", *common)
            assert first.returncode == 0, first.stderr
            assert "copying" in first.stdout
            assert first.stdout.strip().splitlines()[-1] == str(state / "logs" / "mm2.log")
            assert Mirror.attach(state).is_running()

            again = cli("up", "--source-alias", "cli-a", *common)
            assert again.returncode == 1
            assert "already has a running MirrorMaker" in again.stderr

            down = cli("down", "--state-dir", str(state))
            assert down.returncode == 0, down.stderr
            assert not Mirror.attach(state).is_running()

            second = cli(
                "up", "--source-alias", "cli-b", "--replication-policy", "identity", *common
            )
            assert second.returncode == 0, second.stderr
            attached = Mirror.attach(state)
            assert attached.is_running()
            assert attached.settings.source_alias == "cli-b"
            assert attached.remote_topic("orders") == "orders"
            status = cli("status", "--state-dir", str(state))
            assert "MirrorMaker running" in status.stdout
            assert "cli-b->target" in status.stdout
        finally:
            if (state / "mirror.json").exists():
                Mirror.attach(state).kill()
