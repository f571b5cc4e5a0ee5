"""Stamp now, send later: what StampedProducer's tools API (``stamp``, ``send_stamped``) does.

For tools that inject faults honestly (the load generator): a record stamped and never
sent is a sequence the broker never saw; one sent twice is a duplicate; one sent later
than a following record is reordered. Only the sequence is assigned under the
partition's turn; sending goes through ``AIOKafkaProducer.send()`` outside it, so the
order of such records is the caller's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from gapwatch.producer.bookkeeping import DeliveryBook
from gapwatch.producer.compat import StampedRecord
from gapwatch.producer.headers import StampHeaders
from gapwatch.producer.lanes import LaneTable, release_turn, wait_turn

Serializer = Callable[[Any], bytes | None]


class StampAhead:
    """Stamps records of one producer without sending them, and sends them as stamped."""

    __slots__ = (
        "_choose_partition",
        "_inner",
        "_key_serializer",
        "_lanes",
        "_ledger",
        "_stamps",
        "_value_serializer",
    )

    def __init__(
        self,
        *,
        inner: Any,
        ledger: DeliveryBook,
        lanes: LaneTable,
        stamps: StampHeaders,
        choose_partition: Callable[[str, int | None, Any], Awaitable[int]],
        key_serializer: Serializer | None,
        value_serializer: Serializer | None,
    ) -> None:
        self._inner = inner
        self._ledger = ledger
        self._lanes = lanes
        self._stamps = stamps
        self._choose_partition = choose_partition
        self._key_serializer = key_serializer
        self._value_serializer = value_serializer

    async def stamp(
        self,
        topic: str,
        value: Any,
        key: Any,
        partition: int | None,
        timestamp_ms: int | None,
        headers: Iterable[tuple[str, bytes]] | None,
    ) -> StampedRecord:
        """Choose the partition and assign the next sequence, without sending."""
        assert not (value is None and key is None), "Need at least one: key or value"
        key_bytes = key if self._key_serializer is None else self._key_serializer(key)
        value_bytes = value if self._value_serializer is None else self._value_serializer(value)
        partition = await self._choose_partition(topic, partition, key_bytes)
        lane = self._lanes.lane(topic, partition)
        if lane.busy:
            await wait_turn(lane)
        else:
            lane.busy = True
        try:
            seq = self._ledger.assign(lane.book)
        finally:
            release_turn(lane)
        return StampedRecord(
            topic=topic,
            partition=partition,
            seq=seq,
            key=key_bytes,
            value=value_bytes,
            timestamp_ms=timestamp_ms,
            headers=tuple(self._stamps.build(topic, headers, seq)),
        )

    async def send(self, record: StampedRecord) -> asyncio.Future[Any]:
        """Enqueue a record made by :meth:`stamp`, as is; its outcome is booked later."""
        lane = self._lanes.lane(record.topic, record.partition)
        try:
            future: asyncio.Future[Any] = await self._inner.send(
                record.topic,
                record.value,
                record.key,
                record.partition,
                record.timestamp_ms,
                list(record.headers),
            )
        except BaseException as exc:
            self._ledger.failed(lane.book, record.seq, exc)
            raise
        lane.pending.append((record.seq, 1, future))
        return future
