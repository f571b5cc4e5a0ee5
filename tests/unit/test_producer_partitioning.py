"""Partition choice happens before stamping and equals aiokafka's own choice."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.protocol.metadata import MetadataResponse_v0
from prometheus_client import CollectorRegistry

from gapwatch.producer import StampedProducer, murmur2_partition

TOPIC = "orders"
PARTITIONS = 12
UNAVAILABLE = {3, 7}


def _keys() -> list[bytes]:
    rng = random.Random(11)
    keys = [b"", b"a", b"ab", b"abc", b"abcd", b"key-0", "ключ".encode()]
    keys += [rng.randbytes(rng.randrange(0, 40)) for _ in range(2000)]
    return keys


def _metadata() -> MetadataResponse_v0:
    return MetadataResponse_v0(
        brokers=[(1, "127.0.0.1", 1)],
        topics=[
            (
                0,
                TOPIC,
                [(0, p, -1 if p in UNAVAILABLE else 1, [1], [1]) for p in range(PARTITIONS)],
            )
        ],
    )


@pytest.fixture
async def producer() -> AsyncIterator[StampedProducer]:
    """A StampedProducer that never connects, with metadata fed in by hand."""
    producer = StampedProducer(
        bootstrap_servers="127.0.0.1:1",
        producer_id="p",
        reports=None,
        registry=CollectorRegistry(),
    )
    producer.client.cluster.update_metadata(_metadata())
    yield producer
    await producer.stop()


class RecordingPartitioner:
    """aiokafka's default partitioner, noting each partition it chooses."""

    def __init__(self) -> None:
        self._default = DefaultPartitioner()
        self.chosen: list[int] = []

    def __call__(self, key: bytes | None, all_: list[int], available: list[int]) -> int:
        partition = int(self._default(key, all_, available))
        self.chosen.append(partition)
        return partition


class Reference:
    """A plain AIOKafkaProducer with the same metadata: the partition its ``send()`` picks.

    It never connects: ``send()`` only appends to a batch that is never sent (the batches
    are large enough to never fill, so it never waits).
    """

    def __init__(self) -> None:
        self.partitioner = RecordingPartitioner()
        self.producer = AIOKafkaProducer(
            bootstrap_servers="127.0.0.1:1",
            partitioner=self.partitioner,
            max_batch_size=16 * 1024 * 1024,
        )
        self.producer.client.cluster.update_metadata(_metadata())

    async def partition(self, key: bytes | None) -> int:
        await self.producer.send(TOPIC, b"v", key)
        return self.partitioner.chosen[-1]


@pytest.fixture
async def reference() -> AsyncIterator[Reference]:
    ref = Reference()
    yield ref
    await ref.producer.stop()


class TestPartitionChoice:
    def test_murmur2_partition_equals_default_partitioner(self) -> None:
        """The helper for other clients gives aiokafka's (and Java's) keyed partition."""
        partitioner = DefaultPartitioner()
        for n in (1, 2, 3, 7, 12, 100):
            for key in _keys():
                assert murmur2_partition(key, n) == partitioner(key, list(range(n)), [])

    async def test_keyed_choice_equals_aiokafka_producer(
        self, producer: StampedProducer, reference: Reference
    ) -> None:
        """For thousands of keys, the wrapper picks the partition AIOKafkaProducer would."""
        for key in _keys():
            ours = await producer.choose_partition(TOPIC, key)
            theirs = await reference.partition(key)
            assert ours == theirs

    async def test_unkeyed_choice_is_aiokafkas_random_available(
        self, producer: StampedProducer, reference: Reference
    ) -> None:
        """key=None: the same random pick as aiokafka, among partitions with a leader."""
        seen = set()
        for seed in range(300):
            random.seed(seed)
            ours = await producer.choose_partition(TOPIC, None)
            random.seed(seed)
            theirs = await reference.partition(None)
            assert ours == theirs
            seen.add(ours)
        assert seen == set(range(PARTITIONS)) - UNAVAILABLE

    async def test_explicit_partition_is_kept_and_checked(self, producer: StampedProducer) -> None:
        """An explicit partition wins; an unknown one is refused before any sequence is used."""
        assert await producer.choose_partition(TOPIC, b"k", partition=5) == 5
        with pytest.raises(AssertionError, match="Unrecognized partition"):
            await producer.choose_partition(TOPIC, b"k", partition=PARTITIONS)
        assert producer.reports() == []

    async def test_user_partitioner_is_used(self) -> None:
        """A custom partitioner gets (key bytes, all, available) like aiokafka's contract."""
        calls: list[tuple[bytes | None, list[int], list[int]]] = []

        def last_partition(key: bytes | None, all_: list[int], available: list[int]) -> int:
            calls.append((key, all_, available))
            return max(all_)

        producer = StampedProducer(
            bootstrap_servers="127.0.0.1:1",
            reports=None,
            registry=None,
            partitioner=last_partition,
        )
        try:
            producer.client.cluster.update_metadata(
                MetadataResponse_v0(
                    brokers=[(1, "127.0.0.1", 1)],
                    topics=[(0, TOPIC, [(0, p, 1, [1], [1]) for p in range(4)])],
                )
            )
            assert await producer.choose_partition(TOPIC, b"k") == 3
            assert calls == [(b"k", [0, 1, 2, 3], [0, 1, 2, 3])]
        finally:
            await producer.stop()
