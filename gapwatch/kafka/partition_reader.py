"""Reading any partition of one cluster by time and offset, outside every consumer group.

The mirror components ask a source cluster (and the target) bounded questions: where does
this partition start and end, which offset has this timestamp, which stamps lie between
two offsets. :class:`PartitionReader` answers them with one aiokafka consumer that joins
no group and commits nothing; a reader serves one question at a time (an assignment is
per consumer), so callers keep a pool of them for concurrency
(:class:`ReaderPool`). Every answer is bounded: each request by ``request_timeout``, a
scan by its record limit and the offset it stops at.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from gapwatch.core.wire import Stamp, parse_stamp
from gapwatch.errors import GapwatchError, MalformedStampError

# How long one fetch waits for records before the scan counts the range as read to its end.
_FETCH_WAIT_MS = 1000
# Small fetches: a lookup usually needs a few hundred records around a gap, and every
# record fetched is decoded on the event loop the monitor's own consumer runs on.
_FETCH_BATCH = 1000
_FETCH_BYTES = 256 * 1024
# A topic seen in the cluster's metadata is not asked about again for this long: the lag
# rounds ask for every mirrored partition, and a full metadata request per partition would
# cost a large cluster more than the offsets themselves.
_TOPIC_CHECK_INTERVAL_S = 60.0


class PartitionMissingError(GapwatchError):
    """The cluster has no such topic or partition."""


@dataclass(frozen=True, slots=True)
class Bounds:
    """A partition's first offset (the log start) and its end (next offset written)."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class ReadRecord:
    """One record as the mirror components need it: offset, timestamp, stamp (or None)."""

    offset: int
    timestamp_ms: int
    stamp: Stamp | None


class PartitionReader:
    """One group-less consumer answering bounded questions about partitions."""

    def __init__(self, *, client_kwargs: Mapping[str, Any], request_timeout: float = 15.0) -> None:
        self._kwargs = dict(client_kwargs)
        self._timeout = request_timeout
        self._consumer: AIOKafkaConsumer | None = None
        self._topics_seen: dict[str, float] = {}  # topic -> when metadata last listed it

    async def start(self) -> None:
        """Connect (raises what aiokafka raises if the cluster cannot be reached)."""
        consumer = AIOKafkaConsumer(
            **self._kwargs,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=int(self._timeout * 1000),
            max_partition_fetch_bytes=_FETCH_BYTES,
        )
        try:
            async with asyncio.timeout(self._timeout * 2):
                await consumer.start()
        except BaseException:
            # A failed start leaves the client's connections and tasks behind: a source
            # retried every few seconds would pile them up.
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise
        self._consumer = consumer

    async def stop(self) -> None:
        """Disconnect (idempotent)."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    def _client(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise GapwatchError("the partition reader is not started")
        return self._consumer

    async def bounds(self, topic: str, partition: int) -> Bounds:
        """The partition's log start and end; :class:`PartitionMissingError` if absent."""
        consumer = self._client()
        async with asyncio.timeout(self._timeout):
            # beginning_offsets blocks forever on a partition that does not exist.
            await self._require_topic(consumer, topic)
            partitions = consumer.partitions_for_topic(topic) or set()
            if partitions and partition not in partitions:
                raise PartitionMissingError(f"no partition {topic}/{partition}")
            tp = TopicPartition(topic, partition)
            start = (await consumer.beginning_offsets([tp]))[tp]
            end = (await consumer.end_offsets([tp]))[tp]
        return Bounds(start=int(start), end=int(end))

    async def _require_topic(self, consumer: AIOKafkaConsumer, topic: str) -> None:
        seen = self._topics_seen.get(topic)
        if seen is not None and time.monotonic() - seen < _TOPIC_CHECK_INTERVAL_S:
            return
        if topic not in await consumer.topics():
            self._topics_seen.pop(topic, None)
            raise PartitionMissingError(f"no topic {topic!r}")
        self._topics_seen[topic] = time.monotonic()

    async def offset_at(
        self, topic: str, partition: int, timestamp_ms: int
    ) -> tuple[int, int] | None:
        """The first offset whose timestamp is at least ``timestamp_ms``, with that
        timestamp; ``None`` if every record is older."""
        tp = TopicPartition(topic, partition)
        async with asyncio.timeout(self._timeout):
            found = (await self._client().offsets_for_times({tp: max(0, timestamp_ms)}))[tp]
        if found is None:
            return None
        return int(found.offset), int(found.timestamp)

    async def records(
        self, topic: str, partition: int, *, start: int, stop: int, limit: int
    ) -> AsyncIterator[ReadRecord]:
        """The records from ``start`` up to (not including) ``stop``, at most ``limit``.

        Ends early when a fetch waits a full second with nothing new (the range is read as
        far as the log holds it). A malformed stamp reads as no stamp: the mirror
        components compare stamps; the monitor's own record path counts malformed ones.
        """
        consumer = self._client()
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, start)
        yielded = 0
        position = start
        while position < stop and yielded < limit:
            async with asyncio.timeout(self._timeout + _FETCH_WAIT_MS / 1000):
                batch = await consumer.getmany(
                    tp, timeout_ms=_FETCH_WAIT_MS, max_records=min(_FETCH_BATCH, limit - yielded)
                )
            fetched = batch.get(tp, [])
            if not fetched:
                return
            for record in fetched:
                if record.offset >= stop or yielded >= limit:
                    return
                position = record.offset + 1
                yielded += 1
                yield ReadRecord(record.offset, record.timestamp, _stamp_of(record.headers))


def _stamp_of(headers: Any) -> Stamp | None:
    try:
        return parse_stamp(headers)
    except MalformedStampError:
        return None


class SourceNotConnectedError(GapwatchError):
    """The readers of a cluster are not connected (yet, or it is unreachable)."""


class ReaderPool:
    """``size`` readers of one cluster, lent out one question at a time."""

    def __init__(self, *, client_kwargs: Mapping[str, Any], size: int) -> None:
        self._readers = [PartitionReader(client_kwargs=client_kwargs) for _ in range(size)]
        self._idle: asyncio.Queue[PartitionReader] = asyncio.Queue()
        self.is_connected = False

    async def start(self) -> None:
        """Connect every reader; if one fails, the others are closed again and it raises."""
        started: list[PartitionReader] = []
        try:
            for reader in self._readers:
                await reader.start()
                started.append(reader)
        except BaseException:
            for reader in started:
                with contextlib.suppress(Exception):
                    await reader.stop()
            raise
        for reader in started:
            self._idle.put_nowait(reader)
        self.is_connected = True

    async def stop(self) -> None:
        """Disconnect every reader (each even if another fails)."""
        self.is_connected = False
        results = await asyncio.gather(
            *(reader.stop() for reader in self._readers), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def borrow(self) -> PartitionReader:
        """A reader nobody else uses until :meth:`give_back`; waits for one if all are out.

        Raises :class:`SourceNotConnectedError` at once while the pool is not connected, so
        a caller's retries count down instead of waiting for a cluster that may be gone.
        """
        if not self.is_connected:
            raise SourceNotConnectedError("not connected to the cluster")
        return await self._idle.get()

    def give_back(self, reader: PartitionReader) -> None:
        """Return a reader taken with :meth:`borrow`."""
        self._idle.put_nowait(reader)
