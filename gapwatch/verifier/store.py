"""The verifier's checkpoints on Kafka: the shared checkpoint store, found by key.

Records are the monitor's format (:mod:`gapwatch.kafka.checkpoints`: key
``[.., group, topic, partition]``, value = offset + time + tracker snapshot) and are
written and read by the same :class:`~gapwatch.kafka.checkpoints.CheckpointStore`.
One thing differs, on purpose: the monitor finds its checkpoint through a pointer in its
*own* offset commit, but the verifier must not depend on the application's commits (an
auto-committing application commits whatever it was handed, processed or not). So the
verifier finds its record the way a compacted topic is meant to be read: the key's
partition (aiokafka's default partitioner, which the checkpoint producer uses) from its
start to its end, newest record of the key wins. Short segments and an eager cleaner on
the topic (the monitor's settings) keep that read small.

The application's committed offsets are read too (admin ``OffsetFetch``, no group
membership): they say where the application resumes, the verifier's V2 frontier.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner

from gapwatch.errors import GapwatchError
from gapwatch.kafka.checkpoints import (
    Checkpoint,
    CheckpointStore,
    PartitionKey,
    Pointer,
    encode_key,
)
from gapwatch.kafka.startup_errors import explained_start
from gapwatch.kafka.topics import (
    CHECKPOINT_TOPIC_CONFIGS,
    CHECKPOINT_TOPIC_PARTITIONS,
    ensure_topic,
)

_DESCRIBE_ATTEMPTS = 50  # a just-created topic's metadata can take a moment to appear


class VerifierStoreError(GapwatchError):
    """The checkpoint topic could not be set up or read."""


def checkpoint_partition(group_id: str, topic: str, partition: int, partitions: int) -> int:
    """The checkpoint topic partition that the key of (group, topic, partition) hashes to.

    The same computation as aiokafka's producer for a keyed record (murmur2 of the key
    bytes over the sorted partition ids), so a reader knows where the writer put it.
    """
    ids = list(range(partitions))
    chosen: int = DefaultPartitioner()(encode_key(group_id, topic, partition), ids, ids)
    return chosen


class VerifierCheckpoints:
    """Reads and writes one group's verifier checkpoints (see the module docstring)."""

    def __init__(
        self, *, client_kwargs: Mapping[str, Any], topic: str, group_id: str, timeout: float
    ) -> None:
        self._kwargs = dict(client_kwargs)
        self._topic = topic
        self._group_id = group_id
        self._timeout = timeout
        self._store = CheckpointStore(
            client_kwargs=client_kwargs, topic=topic, group_id=group_id, timeout=timeout
        )
        self._partitions = 0

    async def start(self) -> None:
        """Create the checkpoint topic if missing, learn its size, connect."""
        admin = AIOKafkaAdminClient(**self._kwargs)
        try:
            async with explained_start(self._kwargs):
                await admin.start()
            async with asyncio.timeout(self._timeout):
                await ensure_topic(
                    admin,
                    self._topic,
                    partitions=CHECKPOINT_TOPIC_PARTITIONS,
                    configs=CHECKPOINT_TOPIC_CONFIGS,
                )
                self._partitions = await _partition_count(admin, self._topic)
        finally:
            await admin.close()
        async with explained_start(self._kwargs):
            await self._store.start()

    async def stop(self) -> None:
        """Close every client (best effort)."""
        await self._store.stop()

    async def write(self, checkpoints: Mapping[PartitionKey, Checkpoint]) -> None:
        """Write ``checkpoints`` (``acks=all``); raises if any write failed."""
        await self._store.write(checkpoints)

    async def committed(self, keys: Sequence[PartitionKey]) -> dict[PartitionKey, int]:
        """The application's committed offset of each partition that has one."""
        found = await self._store.committed(list(keys))
        return {key: offset for key, (offset, _pointer) in found.items()}

    async def load(self, keys: Sequence[PartitionKey]) -> dict[PartitionKey, Checkpoint]:
        """The newest checkpoint of each key that has one (read from its partition's start)."""
        assert self._partitions > 0, "start() first"
        pointers = {
            key: Pointer(checkpoint_partition(self._group_id, *key, self._partitions), 0)
            for key in keys
        }
        return await self._store.load(pointers)


async def _partition_count(admin: AIOKafkaAdminClient, topic: str) -> int:
    for _ in range(_DESCRIBE_ATTEMPTS):
        described = await admin.describe_topics([topic])
        for entry in described:
            if entry["topic"] == topic and not entry["error_code"] and entry["partitions"]:
                return len(entry["partitions"])
        await asyncio.sleep(0.1)
    raise VerifierStoreError(f"topic {topic!r} has no partitions in the cluster metadata")
