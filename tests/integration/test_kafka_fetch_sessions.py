"""Incremental fetch sessions (``FetchSessions``) on a real broker.

A consumer fetching in sessions reads exactly the log aiokafka's own fetching reads; idle
partitions, which incremental responses leave out, still have their high watermark
confirmed at each response; a broker restart loses the session and a full fetch recovers
it; the gate keeps aiokafka's own fetching on another aiokafka version. The monitor's
side (gap confirmation, rebalances, the setting turned off) is in
``test_monitor_fetch_sessions.py``.
"""

from __future__ import annotations

import asyncio
import time

import aiokafka
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from monitor_support import send_stamped

from gapwatch.kafka.aiokafka_consumer import RecordFetcher, fetch_state
from gapwatch.kafka.aiokafka_fetch_sessions import (
    FetchSessions,
    install_fetch_sessions,
    installed_fetch_sessions,
)
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.kafka

PARTITIONS = 6
BUSY = (0, 1, 2)  # partitions with records; the others stay idle


async def started_consumer(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        max_poll_records=50,
    )
    await consumer.start()
    return consumer


async def read_to_end(
    consumer: AIOKafkaConsumer, fetcher: RecordFetcher, tps: list[TopicPartition]
) -> dict[int, list[int]]:
    """The offsets read per partition until every position reaches the end offset."""
    ends = await consumer.end_offsets(tps)
    offsets: dict[int, list[int]] = {tp.partition: [] for tp in tps}
    async with asyncio.timeout(60):
        while any(fetch_state(consumer, tp)[0] != ends[tp] for tp in tps):
            for tp, records in (await fetcher.getmany(timeout_ms=200)).items():
                offsets[tp.partition] += [record.offset for record in records]
    return offsets


async def read_topic(bootstrap: str, topic: str, *, sessions: bool) -> dict[int, list[int]]:
    consumer = await started_consumer(bootstrap, topic)
    try:
        installed = install_fetch_sessions(consumer) if sessions else None
        assert (installed is not None) is sessions
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        return await read_to_end(consumer, RecordFetcher(consumer), tps)
    finally:
        await consumer.stop()


async def test_sessions_read_the_log_exactly_and_confirm_idle_watermarks(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    """Every record of every partition once, in order, as aiokafka's own fetching reads
    them; then, with nothing new, an idle partition's watermark time advances with the
    session's responses although no response holds it (aiokafka's own time for it stays),
    and records arriving later on a partition idle so far are read too."""
    topic = await make_topic(partitions=PARTITIONS)
    bootstrap = kafka.bootstrap_servers
    for partition in BUSY:
        await send_stamped(bootstrap, topic, partition, range(300))
    with_sessions = await read_topic(bootstrap, topic, sessions=True)
    without = await read_topic(bootstrap, topic, sessions=False)
    assert with_sessions == without
    assert with_sessions == {p: list(range(300)) if p in BUSY else [] for p in range(PARTITIONS)}

    consumer = await started_consumer(bootstrap, topic)
    try:
        sessions = install_fetch_sessions(consumer)
        assert isinstance(sessions, FetchSessions)
        assert installed_fetch_sessions(consumer) is sessions
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        fetcher = RecordFetcher(consumer)
        await read_to_end(consumer, fetcher, tps)
        idle = TopicPartition(topic, PARTITIONS - 1)
        _, high_watermark, confirmed_before = fetch_state(consumer, idle)
        polled_before = consumer.last_poll_timestamp(idle)
        assert high_watermark == 0
        assert confirmed_before is not None
        started = time.monotonic()
        while time.monotonic() - started < 1.5:
            await fetcher.getmany(timeout_ms=200)
        _, high_watermark, confirmed_after = fetch_state(consumer, idle)
        assert high_watermark == 0
        assert confirmed_after is not None
        assert confirmed_after >= confirmed_before + 1000
        # aiokafka's own record of the partition did not move: no response held it.
        assert consumer.last_poll_timestamp(idle) == polled_before
        assert sessions.resets == 0

        await send_stamped(bootstrap, topic, PARTITIONS - 1, range(40))
        late = await read_to_end(consumer, fetcher, tps)
        assert late == {
            p: list(range(40)) if p == PARTITIONS - 1 else [] for p in range(PARTITIONS)
        }
        assert fetch_state(consumer, idle)[1] == 40
    finally:
        await consumer.stop()


async def test_broker_restart_is_recovered_by_a_full_fetch(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    """A restarted broker has forgotten the session: the consumer starts a new one (a
    counted reset) and reads on exactly, the records written after the restart included."""
    topic = await make_topic(partitions=PARTITIONS)
    bootstrap = kafka.bootstrap_servers
    await send_stamped(bootstrap, topic, 0, range(100))
    consumer = await started_consumer(bootstrap, topic)
    try:
        sessions = install_fetch_sessions(consumer)
        assert sessions is not None
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        fetcher = RecordFetcher(consumer)
        first = await read_to_end(consumer, fetcher, tps)
        assert first[0] == list(range(100))
        node = kafka.node_ids[0]
        await asyncio.to_thread(kafka.restart_node, node)
        await send_stamped(bootstrap, topic, 0, range(100, 200))
        await send_stamped(bootstrap, topic, 3, range(50))
        second = await read_to_end(consumer, fetcher, tps)
        assert second[0] == list(range(100, 200))
        assert second[3] == list(range(50))
        assert sessions.resets >= 1
        _, high_watermark, _ = fetch_state(consumer, TopicPartition(topic, 3))
        assert high_watermark == 50
    finally:
        await consumer.stop()


async def test_another_aiokafka_version_keeps_aiokafkas_own_fetching(
    kafka: KafkaCluster, make_topic: MakeTopic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate: sessions are installed on the checked aiokafka version only; without
    them the consumer reads through aiokafka's own fetching."""
    topic = await make_topic(partitions=1)
    await send_stamped(kafka.bootstrap_servers, topic, 0, range(10))
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers)
    assert install_fetch_sessions(consumer) is None  # not started: no fetcher yet
    await consumer.start()
    try:
        monkeypatch.setattr(aiokafka, "__version__", "0.15.0")
        assert install_fetch_sessions(consumer) is None
        assert installed_fetch_sessions(consumer) is None
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        offsets = await read_to_end(consumer, RecordFetcher(consumer), [tp])
        assert offsets == {0: list(range(10))}
    finally:
        await consumer.stop()
