"""The Kafka test bed is a real cluster: records, headers, leaders, failover, CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from gapwatch.testing._admin import admin_client
from gapwatch.testing.kafka import (
    DEFAULT_KAFKA_VERSION,
    KafkaCluster,
    KafkaFetchError,
    NodeStartError,
    ToolMissingError,
    fetch_kafka,
)
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.kafka


class TestSingleNode:
    async def test_records_with_headers_round_trip(
        self, kafka: KafkaCluster, make_topic: MakeTopic
    ) -> None:
        """Values, keys and headers produced through aiokafka come back unchanged."""
        topic = await make_topic(partitions=1)
        sent = [
            (f"key-{i}".encode(), f"value-{i}".encode(), [("gw-seq", str(i).encode()), ("x", b"")])
            for i in range(20)
        ]
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
        await producer.start()
        try:
            for key, value, headers in sent:
                await producer.send_and_wait(topic, value, key=key, headers=headers)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka.bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        received = []
        try:
            while len(received) < len(sent):
                batches = await consumer.getmany(timeout_ms=10_000)
                if not batches:
                    break
                for records in batches.values():
                    received.extend((r.key, r.value, list(r.headers)) for r in records)
        finally:
            await consumer.stop()
        assert received == [(k, v, [(n, b) for n, b in h]) for k, v, h in sent]


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> list[int]:
    """Send every value with acks=all, one at a time; return the offsets Kafka assigned."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", request_timeout_ms=15_000, retry_backoff_ms=200
    )
    await producer.start()
    try:
        return [
            (await producer.send_and_wait(topic, value, partition=0)).offset for value in values
        ]
    finally:
        await producer.stop()


async def _consume_values(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        while len(values) < count:
            batches = await consumer.getmany(timeout_ms=10_000)
            if not batches:
                break
            values.extend(r.value for records in batches.values() for r in records)
    finally:
        await consumer.stop()
    return values


class TestThreeNodes:
    async def test_killed_leader_is_replaced_and_acks_all_produce_continues(
        self, kafka3: KafkaCluster, make_topic: MakeTopic
    ) -> None:
        """SIGKILL of the leader: a different node leads, acks=all writes still succeed with
        min.insync.replicas=2 on 2 of 3 nodes, and the restarted node rejoins the ISR."""
        topic = await make_topic(kafka3, 1, 3, {"min.insync.replicas": "2"})
        before = [f"before-{i}".encode() for i in range(10)]
        await _produce(kafka3.bootstrap_servers, topic, before)
        state = await kafka3.describe_partition(topic, 0)
        assert state.leader is not None
        assert sorted(state.replicas) == kafka3.node_ids
        old_leader = state.leader

        assert kafka3.kill_node(old_leader)
        new_state = await kafka3.wait_for_leader(topic, 0, exclude=[old_leader], timeout_s=30)
        assert new_state.leader != old_leader
        assert old_leader not in new_state.isr

        after = [f"after-{i}".encode() for i in range(10)]
        offsets = await _produce(kafka3.bootstrap_servers, topic, after)
        assert offsets == list(range(len(before), len(before) + len(after)))
        assert await _consume_values(kafka3.bootstrap_servers, topic, 20) == before + after

        await asyncio.to_thread(kafka3.restart_node, old_leader)
        rejoined = await kafka3.wait_for_isr(topic, 0, [old_leader], timeout_s=60)
        assert sorted(rejoined.isr) == kafka3.node_ids

    async def test_fault_sequence_runs_within_a_second(
        self, kafka3: KafkaCluster, make_topic: MakeTopic
    ) -> None:
        """pause follower, kill leader, resume follower: signals only, no waiting."""
        topic = await make_topic(kafka3, 1, 3)
        state = await kafka3.describe_partition(topic, 0)
        assert state.leader is not None
        follower = next(r for r in state.replicas if r != state.leader)

        started = time.monotonic()
        assert kafka3.pause_node(follower)
        assert kafka3.kill_node(state.leader)
        assert kafka3.resume_node(follower)
        assert time.monotonic() - started < 1.0

        assert kafka3.wait_node_exit(state.leader, timeout_s=5)
        assert kafka3.is_node_running(follower)
        assert not kafka3.is_node_paused(follower)

    async def test_pause_freezes_the_jvm_until_resume(self, kafka3: KafkaCluster) -> None:
        """SIGSTOP puts the JVM in state T (stopped); SIGCONT lets it run again."""
        node_id = kafka3.node_ids[0]
        assert kafka3.pause_node(node_id)
        # Delivery is asynchronous: every JVM thread must be stopped before the state flips.
        assert await _wait_for_state(kafka3, node_id, lambda s: s == "T")
        assert kafka3.is_node_paused(node_id)
        assert kafka3.resume_node(node_id)
        assert await _wait_for_state(kafka3, node_id, lambda s: s != "T")

    def test_stop_node_shuts_down_gracefully(self, kafka3: KafkaCluster) -> None:
        """SIGTERM lets the JVM exit by itself (controlled shutdown), with exit code 143/0."""
        node_id = kafka3.node_ids[-1]
        assert kafka3.stop_node(node_id)
        assert kafka3.wait_node_exit(node_id, timeout_s=30)
        # 143 = 128 + SIGTERM: the JVM ran its shutdown hooks; SIGKILL would give -9.
        assert kafka3.node_exit_code(node_id) in (0, 143)
        assert "shutting down" in kafka3.log_path(node_id).read_text().lower()

    def test_earlier_faults_are_healed_before_each_test(self, kafka3: KafkaCluster) -> None:
        """The plugin restarted whatever previous tests killed, stopped or paused."""
        assert all(kafka3.is_node_running(n) for n in kafka3.node_ids)
        assert not any(kafka3.is_node_paused(n) for n in kafka3.node_ids)


async def _wait_for_state(
    cluster: KafkaCluster, node_id: int, is_wanted: Callable[[str], bool]
) -> bool:
    """Poll the JVM's process state for up to 5 s until ``is_wanted`` accepts it."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if is_wanted(_process_state(cluster, node_id)):
            return True
        await asyncio.sleep(0.02)
    return False


def _process_state(cluster: KafkaCluster, node_id: int) -> str:
    """One-letter Linux process state of the node's JVM (R, S, T, ...)."""
    state = json.loads((cluster.state_dir / "cluster.json").read_text())
    pid = next(n["pid"] for n in state["nodes"] if n["node_id"] == node_id)
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[-1].split()[0]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gapwatch.testing.kafka", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def _jvms_using(state_dir: Path) -> list[int]:
    """PIDs of live processes whose command line mentions ``state_dir``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if str(state_dir).encode() in cmdline and state != "Z":
            pids.append(int(proc.name))
    return pids


class TestCommandLine:
    async def test_up_prints_bootstrap_last_and_down_leaves_no_jvm(self, tmp_path: Path) -> None:
        """`up --nodes 3` detaches a cluster whose metadata lists 3 brokers; `down` ends it."""
        state_dir = tmp_path / "cluster"
        try:
            up = await asyncio.to_thread(_cli, "up", "--nodes", "3", "--state-dir", str(state_dir))
            assert up.returncode == 0, up.stderr
            bootstrap = up.stdout.strip().splitlines()[-1]
            assert len(bootstrap.split(",")) == 3
            assert len(_jvms_using(state_dir)) == 3  # the CLI has exited; the JVMs have not

            async with admin_client(bootstrap) as admin:
                cluster = await admin.describe_cluster()
            assert sorted(b["node_id"] for b in cluster["brokers"]) == [1, 2, 3]

            killed = await asyncio.to_thread(
                _cli, "kill", "--node", "2", "--state-dir", str(state_dir)
            )
            assert killed.returncode == 0, killed.stderr
            status = await asyncio.to_thread(_cli, "status", "--state-dir", str(state_dir))
            assert "node 2: " in status.stdout
            assert " down" in status.stdout.splitlines()[1]
        finally:
            down = await asyncio.to_thread(_cli, "down", "--state-dir", str(state_dir))
        assert down.returncode == 0, down.stderr
        assert _jvms_using(state_dir) == []
        assert _cli("down", "--state-dir", str(state_dir)).returncode == 0  # idempotent


class TestFetch:
    def test_second_fetch_uses_cache_without_maven(self, tmp_path: Path) -> None:
        """With jars cached, `fetch` succeeds even with no `mvn` on PATH, and changes nothing."""
        first = fetch_kafka()
        marker = first.jars_dir.parent / "COMPLETE"
        before = marker.stat().st_mtime_ns
        no_maven_path = tmp_path / "bin"
        no_maven_path.mkdir()
        env = {**os.environ, "PATH": str(no_maven_path)}
        started = time.monotonic()
        again = _cli("fetch", env=env)
        assert again.returncode == 0, again.stderr
        assert "cached" in again.stdout
        assert time.monotonic() - started < 10
        assert marker.stat().st_mtime_ns == before

    def test_missing_maven_is_a_clear_error(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An empty cache and no `mvn` on PATH: ToolMissingError naming Maven."""
        monkeypatch.setenv("PATH", str(tmp_path))
        with pytest.raises(ToolMissingError, match="mvn"):
            fetch_kafka(root=tmp_path / "cache")

    def test_unreachable_maven_central_is_a_clear_error(self, tmp_path: Path) -> None:
        """Maven pointed at a dead mirror with an empty local repo: KafkaFetchError says so."""
        settings = tmp_path / "settings.xml"
        settings.write_text(
            "<settings><mirrors><mirror><id>dead</id><mirrorOf>*</mirrorOf>"
            "<url>http://127.0.0.1:9/maven2</url></mirror></mirrors></settings>"
        )
        args = ["-s", str(settings), f"-Dmaven.repo.local={tmp_path / 'm2'}"]
        with pytest.raises(KafkaFetchError, match="could not download Kafka"):
            fetch_kafka(root=tmp_path / "cache", maven_args=args, timeout=120)
        assert not (tmp_path / "cache" / DEFAULT_KAFKA_VERSION / "COMPLETE").exists()


class TestStartFailure:
    def test_node_that_cannot_start_raises_with_its_log_tail(self, tmp_path: Path) -> None:
        """A JVM that dies at start-up (heap too small) is reported with its output."""
        cluster = KafkaCluster(nodes=1, state_dir=tmp_path / "bad", heap="1k")
        with pytest.raises(NodeStartError, match=r"(?s)exited.*heap"):
            cluster.start()
        assert _jvms_using(tmp_path / "bad") == []
