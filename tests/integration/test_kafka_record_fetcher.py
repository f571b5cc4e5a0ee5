"""RecordFetcher on a real broker: its direct path and aiokafka's ``getmany()`` read one log
alike.

One partition gets every kind of record batch a monitor meets: gzip-compressed batches of
stamped records with a gap, a duplicate and a late record; records without gapwatch
headers, with malformed ones and with the headers in another order; a committed and an
aborted transaction (control batches); more stamped records. Each path reads it from the
start and from the middle of a batch, both reading committed and uncommitted, with a small
``max_records`` that cuts batches: the same records per call, the same positions, and the
same tracker decisions. ``gapwatch audit`` gives the same result on either path.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import aiokafka
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from gapwatch.commands.range_audit import run_audit
from gapwatch.core.events import Event
from gapwatch.core.stamps import StampReader
from gapwatch.core.tracker import PartitionTracker
from gapwatch.core.wire import encode_stamp
from gapwatch.kafka.aiokafka_consumer import RecordFetcher
from gapwatch.monitor.ingest.recordpath import feed_records
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.kafka

NOW = 1_700_000_000.0
MAX_RECORDS = 7


async def write_mixed_log(bootstrap: str, topic: str) -> None:
    """Every kind of batch, in one partition (see the module docstring)."""
    compressed = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", compression_type="gzip", linger_ms=50
    )
    plain = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    transactional = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"{topic}-tx", enable_idempotence=True
    )
    for client in (compressed, plain, transactional):
        await client.start()
    try:

        async def stamped(client: AIOKafkaProducer, producer: str, seqs: list[int]) -> None:
            futures = [
                await client.send(
                    topic, b"x" * 50, partition=0, headers=encode_stamp(producer, 1, s)
                )
                for s in seqs
            ]
            await asyncio.gather(*futures)

        await stamped(compressed, "p1", [s for s in range(40) if s not in (11, 12)] + [5, 12])
        for headers in (
            [],
            [("other", b"1")],
            [("gapwatch-producer", b"p1"), ("gapwatch-epoch", b"1"), ("gapwatch-seq", b"x")],
            [("gapwatch-producer", b"p1"), ("gapwatch-epoch", b"1")],
            # Valid, in another order: the record path's slow way (parse_stamp).
            [("gapwatch-producer", b"p1"), ("gapwatch-seq", b"40"), ("gapwatch-epoch", b"1")],
        ):
            await plain.send_and_wait(topic, b"raw", partition=0, headers=headers)
        async with transactional.transaction():
            await stamped(transactional, "p2", list(range(10)))
        await transactional.begin_transaction()
        await stamped(transactional, "p2", list(range(10, 15)))
        await transactional.abort_transaction()
        async with transactional.transaction():
            await stamped(transactional, "p2", list(range(15, 20)))
        await stamped(compressed, "p1", list(range(40, 60)))
    finally:
        for client in (compressed, plain, transactional):
            await client.stop()


async def read_all(
    bootstrap: str,
    topic: str,
    *,
    direct: bool,
    committed: bool,
    start: int,
    seek_back_after: int | None = None,
) -> tuple[list[Any], list[int], int, dict[str, Any]]:
    """Every getmany() call's records and the position after it, the end position, and
    what a tracker fed chunk by chunk decided. ``seek_back_after``: after that many calls,
    seek back to ``start`` once (dropping what the consumer had buffered) and read on."""
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="none",
        max_poll_records=MAX_RECORDS,
        isolation_level="read_committed" if committed else "read_uncommitted",
    )
    await consumer.start()
    try:
        fetcher = RecordFetcher(consumer, direct=direct)
        assert fetcher.reads_batches_directly is direct
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, start)
        calls: list[Any] = []
        positions: list[int] = []
        tracker, stamps, events = PartitionTracker(topic, 0), StampReader(), list[Event]()
        async with asyncio.timeout(60):
            while await consumer.position(tp) < end:
                batches = await fetcher.getmany(timeout_ms=1000)
                records = list(batches.get(tp, ()))
                assert set(batches) <= {tp}
                assert len(records) <= MAX_RECORDS
                assert all(isinstance(r, ConsumerRecord) is not direct for r in records)
                calls.append([(r.offset, r.timestamp, tuple(r.headers)) for r in records])
                positions.append(await consumer.position(tp))
                if len(calls) == seek_back_after:
                    consumer.seek(tp, start)
                feed_records(
                    records, tracker=tracker, stamps=stamps, latency=None, now=NOW, events=events
                )
        outcome = {
            "events": events,
            "counters": tracker.counters.as_dict(),
            "gaps": sorted(repr(g) for g in tracker.gaps()),
        }
        return calls, positions, end, outcome
    finally:
        await consumer.stop()


@pytest.mark.parametrize("committed", [False, True], ids=["uncommitted", "committed"])
async def test_direct_path_reads_the_log_as_getmany_does(
    kafka: KafkaCluster, make_topic: MakeTopic, committed: bool
) -> None:
    """From the start and from offset 3 (inside the first compressed batch): the same
        records in the same calls, positions after each call and at the end, tracker events,
        counters and gaps, also with a seek back after two calls (a buffered fetch dropped
    midway); reading committed, the aborted transaction's records are skipped."""
    topic = await make_topic(partitions=1)
    bootstrap = kafka.bootstrap_servers
    await write_mixed_log(bootstrap, topic)
    for start in (0, 3):
        public = await read_all(bootstrap, topic, direct=False, committed=committed, start=start)
        direct = await read_all(bootstrap, topic, direct=True, committed=committed, start=start)
        assert direct == public
        # A seek in the middle of a buffered fetch: both paths start over alike.
        reread = [
            await read_all(
                bootstrap, topic, direct=d, committed=committed, start=start, seek_back_after=2
            )
            for d in (False, True)
        ]
        assert reread[0] == reread[1]
        assert reread[1][0][2] == direct[0][0]  # the third call reads the first one again
        calls, positions, end, outcome = direct
        assert positions[-1] == end  # past the last transaction marker too
        offsets = [offset for call in calls for offset, _, _ in call]
        assert offsets == sorted(set(offsets))
        assert offsets[0] == start
        aborted_p2 = [
            h for call in calls for _, _, h in call if h[:1] == (("gapwatch-producer", b"p2"),)
        ]
        assert len(aborted_p2) == (15 if committed else 20)
        counters = outcome["counters"]
        assert counters["unstamped"] == 2
        assert counters["malformed"] == 2
        assert counters["duplicates"] >= 1


async def test_audit_finds_the_same_on_both_paths(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    """``gapwatch audit``'s gaps and counters do not depend on the path it reads through."""
    topic = await make_topic(partitions=1)
    bootstrap = kafka.bootstrap_servers
    await write_mixed_log(bootstrap, topic)
    results = [
        await run_audit(
            client_kwargs={"bootstrap_servers": bootstrap},
            topic=topic,
            read_batches_directly=direct,
            deadline_s=60,
        )
        for direct in (False, True)
    ]
    # Equal but for when each audit ran (the gaps' times).
    timeless = [
        (
            result.counters,
            result.ranges,
            [
                dataclasses.replace(
                    g,
                    opened_at=0,
                    updated_at=0,
                    confirmed_at=g.confirmed_at and 0,
                    healed_at=g.healed_at and 0,
                )
                for g in result.gaps
            ],
        )
        for result in results
    ]
    assert timeless[0] == timeless[1]
    assert results[1].counters[0]["malformed"] == 2
    assert {(g.producer, g.first_seq, g.last_seq) for g in results[1].gaps if g.is_loss} == {
        ("p1", 11, 11)
    }


async def test_another_aiokafka_version_reads_through_getmany(
    kafka: KafkaCluster, make_topic: MakeTopic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate: on the checked aiokafka version a started consumer is read directly; on
    any other (the version string changed) the fetcher is ``getmany()`` itself."""
    topic = await make_topic(partitions=1)
    bootstrap = kafka.bootstrap_servers
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"v", partition=0, headers=encode_stamp("p", 1, 0))
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    assert RecordFetcher(consumer).reads_batches_directly is False  # not started yet
    await consumer.start()
    try:
        assert RecordFetcher(consumer).reads_batches_directly is True
        monkeypatch.setattr(aiokafka, "__version__", "0.15.0")
        fetcher = RecordFetcher(consumer)
        assert fetcher.reads_batches_directly is False
        consumer.assign([TopicPartition(topic, 0)])
        async with asyncio.timeout(30):
            records: list[Any] = []
            while not records:
                records = [r for rs in (await fetcher.getmany(timeout_ms=500)).values() for r in rs]
        assert [type(r) for r in records] == [ConsumerRecord]
        assert list(records[0].headers) == list(encode_stamp("p", 1, 0))
    finally:
        await consumer.stop()
