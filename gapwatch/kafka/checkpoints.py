"""Saving and restoring tracker state through Kafka, so restarts and rebalances are exact.

The monitor and the verifier both keep their trackers' snapshots this way.

Design (``docs/monitor.md`` has the full story):

1. Every ``checkpoint_interval`` seconds, on revocation and on SIGTERM, each owned
   partition's tracker snapshot and its next offset are written to the compacted
   checkpoint topic (``acks=all``), and only then is the group's offset committed, with a
   pointer to that checkpoint record as the commit metadata. The commit makes the
   checkpoint current; a crash between the two leaves the previous pair intact.
2. On assignment, the committed pointer is read (admin ``OffsetFetch``), the checkpoint
   partition is read from the pointer to its end, and the newest checkpoint of that key
   wins (a newer one exists if the monitor crashed after writing but before committing:
   it is just as valid a pair). The tracker is restored and consumption resumes exactly at
   the checkpoint's offset, so records are neither skipped nor double-counted.
3. ``before_write`` (the gap log's flush) runs before every write: if it raises, nothing
   is written and so nothing committed, which keeps every gap change the checkpoint covers
   in the gap log before the offsets move past it.
4. Kafka's own commit metadata is limited to 4 KiB by default, too small for a snapshot
   that carries the truncation ring; that is why the snapshot lives in a topic.
5. Size: values up to ``max_bytes`` (:data:`~gapwatch.kafka.topics.CHECKPOINT_MAX_BYTES`)
   are written (deflated by the snapshot already, so not compressed again) to a topic
   created with a matching ``max.message.bytes``. A larger value, or one the broker
   refuses as too large (a checkpoint topic created earlier with a smaller limit), is left
   out of the result and logged; the caller counts it and does not commit that partition,
   so it restarts from its previous checkpoint. The other partitions are unaffected.

**Byte formats.** A checkpoint is one record on gapwatch's compacted checkpoint topic::

    key:    ["gapwatch-checkpoint", 1, "<group>", "<topic>", <partition>]   (JSON, UTF-8)
    value:  b"GWC1" + offset (i64, big-endian) + written_at (f64) + tracker snapshot bytes

``offset`` is the next offset to read: the snapshot is the tracker's state after every
record below it. The group's offset commit for the partition carries, as its metadata,
a pointer to that record (``{"v":1,"p":<checkpoint partition>,"o":<checkpoint offset>}``),
so the commit is what makes a checkpoint current. Decoding is for untrusted bytes: only
:class:`CheckpointDecodeError` escapes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import MessageSizeTooLargeError

from gapwatch.errors import GapwatchError
from gapwatch.kafka.topics import CHECKPOINT_BATCH_OVERHEAD, CHECKPOINT_MAX_BYTES

MAGIC: Final = b"GWC1"
_HEADER: Final = struct.Struct(">qd")
KEY_TAG: Final = "gapwatch-checkpoint"


class CheckpointDecodeError(GapwatchError):
    """A checkpoint record or commit pointer that cannot be used."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tracker snapshot and the offset it belongs to."""

    offset: int
    written_at: float
    snapshot: bytes


@dataclass(frozen=True, slots=True)
class Pointer:
    """Where a checkpoint record sits on the checkpoint topic."""

    partition: int
    offset: int


def encode_key(group_id: str, topic: str, partition: int) -> bytes:
    """The record key: one per (group, topic, partition), so compaction keeps the latest."""
    return json.dumps([KEY_TAG, 1, group_id, topic, partition], separators=(",", ":")).encode()


def encode_value(checkpoint: Checkpoint) -> bytes:
    """The record value."""
    return MAGIC + _HEADER.pack(checkpoint.offset, checkpoint.written_at) + checkpoint.snapshot


def decode_value(value: bytes | None) -> Checkpoint:
    """The checkpoint in a record value; raises :class:`CheckpointDecodeError`."""
    if value is None or len(value) < len(MAGIC) + _HEADER.size or not value.startswith(MAGIC):
        raise CheckpointDecodeError("not a version 1 gapwatch checkpoint")
    offset, written_at = _HEADER.unpack_from(value, len(MAGIC))
    if offset < 0:
        raise CheckpointDecodeError("negative offset")
    return Checkpoint(offset, written_at, bytes(value[len(MAGIC) + _HEADER.size :]))


def encode_pointer(pointer: Pointer) -> str:
    """Commit metadata pointing at a checkpoint record (well below Kafka's 4 KiB limit)."""
    return json.dumps({"v": 1, "p": pointer.partition, "o": pointer.offset}, separators=(",", ":"))


def decode_pointer(metadata: str | None) -> Pointer | None:
    """The pointer in commit metadata; ``None`` if the commit carries none (not ours)."""
    if not metadata:
        return None
    try:
        body = json.loads(metadata)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("v") != 1:
        return None
    partition, offset = body.get("p"), body.get("o")
    if not isinstance(partition, int) or not isinstance(offset, int):
        return None
    if partition < 0 or offset < 0:
        return None
    return Pointer(partition, offset)


log = logging.getLogger(__name__)

PartitionKey = tuple[str, int]
READ_BATCH = 500
# Loop time one step of queueing checkpoint records may take before others get a turn.
STEP_BUDGET = 0.005


class CheckpointStore:
    """Writes and reads checkpoints of one consumer group on one checkpoint topic."""

    def __init__(
        self,
        *,
        client_kwargs: Mapping[str, Any],
        topic: str,
        group_id: str,
        timeout: float = 30.0,
        before_write: Callable[[], Awaitable[None]] | None = None,
        max_bytes: int = CHECKPOINT_MAX_BYTES,
    ) -> None:
        self._kwargs = dict(client_kwargs)
        self._max_bytes = max_bytes
        self._before_write = before_write
        self._topic = topic
        self._group_id = group_id
        self._timeout = timeout
        self._producer: AIOKafkaProducer | None = None
        self._reader: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None

    async def start(self) -> None:
        """Connect the producer, the reader and the admin client."""
        # No compression: the snapshot is deflated already (in the worker thread that takes
        # it, where zlib releases the GIL). A producer-side gzip ran on the event loop, 47
        # ms for a partition of 100k streams, for little gain since snapshot version 4.
        self._producer = AIOKafkaProducer(
            **self._kwargs,
            acks="all",
            linger_ms=0,
            max_request_size=self._max_bytes + CHECKPOINT_BATCH_OVERHEAD,
        )
        await self._producer.start()
        # A throwaway reader without a group: it only ever seeks to committed pointers.
        self._reader = AIOKafkaConsumer(
            **self._kwargs,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        await self._reader.start()
        self._admin = AIOKafkaAdminClient(**self._kwargs)
        await self._admin.start()

    async def stop(self) -> None:
        """Close every client (best effort: all are closed even if one fails)."""
        for client in (self._producer, self._reader, self._admin):
            if client is None:
                continue
            try:
                if isinstance(client, AIOKafkaAdminClient):
                    await client.close()
                else:
                    await client.stop()
            except Exception:
                log.exception("closing a checkpoint client failed")

    async def write(
        self, checkpoints: Mapping[PartitionKey, Checkpoint]
    ) -> dict[PartitionKey, Pointer]:
        """Write ``checkpoints``; returns where each landed. Too large ones are left out
        (rule 5); raises if any other write failed."""
        assert self._producer is not None, "start() first"
        if self._before_write is not None:
            await self._before_write()
        futures = {}
        step_started = time.perf_counter()
        for key, checkpoint in checkpoints.items():
            if time.perf_counter() - step_started > STEP_BUDGET:
                # send() only queues the record, without yielding: thousands of them (a
                # revocation, a shutdown) held the event loop for tens of milliseconds.
                await asyncio.sleep(0)
                step_started = time.perf_counter()
            value = encode_value(checkpoint)
            if len(value) > self._max_bytes:
                log.error(
                    "%s/%d: checkpoint of %d bytes exceeds %d; not written",
                    key[0],
                    key[1],
                    len(value),
                    self._max_bytes,
                )
                continue
            futures[key] = await self._producer.send(
                self._topic, value, key=encode_key(self._group_id, key[0], key[1])
            )
        pointers: dict[PartitionKey, Pointer] = {}
        async with asyncio.timeout(self._timeout):
            for key, future in futures.items():
                try:
                    metadata = await future
                except MessageSizeTooLargeError:
                    log.error(
                        "%s/%d: the broker refused a checkpoint as too large; check the "
                        "max.message.bytes of topic %s",
                        key[0],
                        key[1],
                        self._topic,
                    )
                    continue
                pointers[key] = Pointer(metadata.partition, metadata.offset)
        return pointers

    async def committed(
        self, partitions: list[PartitionKey]
    ) -> dict[PartitionKey, tuple[int, Pointer | None]]:
        """The group's committed offset and checkpoint pointer of each partition that has one."""
        assert self._admin is not None, "start() first"
        tps = [TopicPartition(topic, partition) for topic, partition in partitions]
        async with asyncio.timeout(self._timeout):
            offsets = await self._admin.list_consumer_group_offsets(self._group_id, partitions=tps)
        result: dict[PartitionKey, tuple[int, Pointer | None]] = {}
        for tp, committed in offsets.items():
            if committed.offset >= 0:
                result[(tp.topic, tp.partition)] = (
                    committed.offset,
                    decode_pointer(committed.metadata),
                )
        return result

    async def load(
        self, pointers: Mapping[PartitionKey, Pointer]
    ) -> dict[PartitionKey, Checkpoint]:
        """The newest checkpoint at or after each pointer (see the module docstring)."""
        if not pointers:
            return {}
        reader = self._reader
        assert reader is not None, "start() first"
        wanted = {encode_key(self._group_id, t, p): (t, p) for t, p in pointers}
        starts: dict[TopicPartition, int] = {}
        for pointer in pointers.values():
            tp = TopicPartition(self._topic, pointer.partition)
            starts[tp] = min(starts.get(tp, pointer.offset), pointer.offset)
        found: dict[PartitionKey, Checkpoint] = {}
        try:
            async with asyncio.timeout(self._timeout):
                await CheckpointStore._read_into(reader, starts, wanted, found)
        finally:
            # Left assigned, the reader's background fetcher would fetch every checkpoint
            # partition once more and hold the answer (up to max_partition_fetch_bytes
            # each) until the next load, which may be days away.
            reader.unsubscribe()
        return found

    def is_reading(self) -> bool:
        """Whether the reader holds checkpoint partitions (only while a load runs)."""
        return self._reader is not None and bool(self._reader.assignment())

    @staticmethod
    async def _read_into(
        reader: AIOKafkaConsumer,
        starts: dict[TopicPartition, int],
        wanted: dict[bytes, PartitionKey],
        found: dict[PartitionKey, Checkpoint],
    ) -> None:
        """Read each checkpoint partition from its start to its current end into ``found``."""
        reader.assign(list(starts))
        ends = await reader.end_offsets(list(starts))
        for tp, start in starts.items():
            reader.seek(tp, start)
        pending = {tp for tp in starts if ends[tp] > starts[tp]}
        while pending:
            batches = await reader.getmany(*pending, timeout_ms=1000, max_records=READ_BATCH)
            for tp, records in batches.items():
                for record in records:
                    target = wanted.get(record.key)
                    if target is None or record.offset >= ends[tp]:
                        continue
                    try:
                        found[target] = decode_value(record.value)
                    except CheckpointDecodeError as exc:
                        log.warning("ignoring checkpoint at %s@%d: %s", tp, record.offset, exc)
            for tp in list(pending):
                if await reader.position(tp) >= ends[tp]:
                    pending.discard(tp)
