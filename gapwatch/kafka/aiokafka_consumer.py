"""The one place that reads aiokafka consumer internals, for what its public API lacks.

Facts the monitor needs that have no public accessor in aiokafka:

* **A partition's fetch state without waiting**: the consumer's position, the high
  watermark of the latest fetch response and when that response arrived. The public
  ``position()`` awaits while the position is unknown and can wait through a rebalance,
  which would deadlock with the rebalance listener on the monitor's lock; ``highwater()``
  asserts assignment. The consumer's position also steps over transaction markers, which
  "last record + 1" would not: without it a transactional partition would never look
  caught up. Read from ``consumer._subscription``.
* **A partition's leader**: the cluster metadata the fetcher itself routes by, read from
  ``consumer._client.cluster``.
* **A metadata refresh now** (tests waiting for a topic just created), instead of at the
  next ``metadata_max_age_ms``: ``consumer._client.force_metadata_update()``.
* **Fetched records without a ``ConsumerRecord`` each** (:class:`RecordFetcher`). The
  monitor and ``gapwatch audit`` read only a record's offset, timestamp and headers, but
  ``getmany()`` builds an 11-field ``ConsumerRecord`` per record through a Python
  generator, which was the largest cost left per record (``docs/benchmarks.md``). The
  record batches aiokafka decoded already (in C) hold record objects with exactly those
  three attributes; :class:`RecordFetcher` hands those out, taking them from the fetcher's
  buffered results as ``getmany()`` does, with the same skipping rules (control batches,
  aborted transactions when reading committed, the head of a batch fetched from its
  middle), limits and position updates.
* **Fetch sessions' high-watermark confirmations**: with incremental fetch sessions
  (:mod:`gapwatch.kafka.aiokafka_fetch_sessions`) a partition absent from a response had
  its high watermark confirmed unchanged by it; :func:`fetch_state` takes that time.

Checked against aiokafka 0.14.0 (the version ``pyproject.toml`` pins, ``>=0.14,<0.15``):
``SubscriptionState.subscription.assignment.state_value(tp)`` with ``has_valid_position``,
``position``, ``highwater`` and ``timestamp``; ``AIOKafkaClient.cluster`` with
``leader_for_partition(tp)`` and ``force_metadata_update()``; for :class:`RecordFetcher`,
``AIOKafkaConsumer.getmany`` and ``Fetcher.fetched_records`` (the waiting and draining
loop), ``FetchResult.getall`` (``check_assignment``, ``_update_position``,
``_partition_records``) and ``PartitionRecords._unpack_records`` (its state:
``_records``, ``_records_iterator``, ``next_fetch_offset``, ``_check_crcs``,
``_isolation_level``, ``_aborted_producers``, and its transaction helpers), read line by
line. :class:`RecordFetcher` uses ``getmany()`` itself for any other aiokafka minor version
or when one of those members is missing (:func:`can_read_batches_directly`). A new aiokafka
minor version must be checked again here before the pin moves. ``pyproject.toml`` lets
ruff's ``SLF001`` pass for this module and ``aiokafka_fetch_sessions.py``.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

import aiokafka
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.errors import ConsumerStoppedError, CorruptRecordException

from gapwatch.kafka.aiokafka_fetch_sessions import installed_fetch_sessions


def fetch_state(
    consumer: AIOKafkaConsumer, tp: TopicPartition
) -> tuple[int | None, int | None, int | None]:
    """(position, high watermark, when it was fetched in ms) of ``tp``, without waiting.

    ``(None, None, None)`` while ``tp`` is not assigned; the position is ``None`` while it
    is not known yet.
    """
    subscription = consumer._subscription.subscription
    assignment = None if subscription is None else subscription.assignment
    tp_state = None if assignment is None else assignment.state_value(tp)
    if tp_state is None:
        return None, None, None
    position = tp_state.position if tp_state.has_valid_position else None
    polled_ms = tp_state.timestamp
    sessions = installed_fetch_sessions(consumer)
    if sessions is not None:
        # With fetch sessions a partition absent from a response had its high watermark
        # confirmed unchanged by it (gapwatch.kafka.fetch_session, S5).
        confirmed_ms = sessions.confirmed_at(tp)
        if confirmed_ms is not None and (polled_ms is None or confirmed_ms > polled_ms):
            polled_ms = confirmed_ms
    return position, tp_state.highwater, polled_ms


def partition_leader(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    """The broker id leading ``tp`` in the consumer's cluster metadata (``None`` or negative
    while unknown)."""
    leader: int | None = consumer._client.cluster.leader_for_partition(tp)
    return leader


async def refresh_metadata(consumer: AIOKafkaConsumer) -> None:
    """Ask the cluster for fresh metadata now (new topics, partitions, leaders)."""
    await consumer._client.force_metadata_update()


# --- reading fetched record batches without ConsumerRecords ------------------------------


class FetchedRecord(Protocol):
    """What a record reader gets of each record: aiokafka's ``ConsumerRecord`` on the public
    path, the record batch's own record object on the direct one."""

    @property
    def offset(self) -> int: ...

    @property
    def timestamp(self) -> int: ...

    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]]: ...


FetchedBatches = Mapping[TopicPartition, Sequence[FetchedRecord]]

# The aiokafka minor version whose fetcher this module was read against (see the docstring).
CHECKED_AIOKAFKA_VERSION: Final = (0, 14)
# What the direct path reads or calls; anything missing means "the public path".
_MODULE_MEMBERS: Final = ("FetchResult", "PartitionRecords", "READ_COMMITTED")
_CONSUMER_MEMBERS: Final = ("_closed", "_coordinator", "_subscription", "_max_poll_records")
_FETCHER_MEMBERS: Final = (
    "_records",
    "_subscriptions",
    "_notify",
    "_create_fetch_waiter",
    "_wait_consume_future",
    "_closed",
)
_PARTITION_RECORDS_MEMBERS: Final = (
    "_unpack_records",
    "_consume_aborted_up_to",
    "_contains_abort_marker",
    "_consumer_record",
)
_NO_LIMIT: Final = sys.maxsize


def can_read_batches_directly(consumer: AIOKafkaConsumer) -> bool:
    """Whether :class:`RecordFetcher` may read ``consumer``'s fetched batches itself: the
    checked aiokafka version, started, and every member it relies on present."""
    version = tuple(int(part) for part in aiokafka.__version__.split(".")[:2] if part.isdigit())
    fetcher = getattr(consumer, "_fetcher", None)
    if not all(hasattr(aiokafka_fetcher, name) for name in _MODULE_MEMBERS):
        return False
    partition_records, fetch_result = (
        aiokafka_fetcher.PartitionRecords,
        aiokafka_fetcher.FetchResult,
    )
    return (
        version == CHECKED_AIOKAFKA_VERSION
        and fetcher is not None
        and all(hasattr(consumer, name) for name in _CONSUMER_MEMBERS)
        and all(hasattr(fetcher, name) for name in _FETCHER_MEMBERS)
        and all(hasattr(partition_records, name) for name in _PARTITION_RECORDS_MEMBERS)
        and all(hasattr(fetch_result, name) for name in ("_update_position", "check_assignment"))
    )


class RecordFetcher:
    """``consumer.getmany()`` for readers that need only each record's offset, timestamp and
    headers.

    On the direct path (:attr:`reads_batches_directly`) the records handed out are the
    record batches' own record objects, not ``ConsumerRecord`` objects; the partitions, the
    records, their order, the errors raised and the consumer's positions afterwards are those
    of ``getmany()``. Otherwise (another aiokafka version, or ``direct=False``) it is
    ``getmany()`` itself.
    """

    __slots__ = ("_consumer", "reads_batches_directly")

    def __init__(self, consumer: AIOKafkaConsumer, *, direct: bool = True) -> None:
        """``consumer`` must be started (its fetcher exists only then)."""
        self._consumer = consumer
        self.reads_batches_directly = direct and can_read_batches_directly(consumer)

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int, max_records: int | None = None
    ) -> FetchedBatches:
        """What ``consumer.getmany(*partitions, timeout_ms=..., max_records=...)`` returns."""
        if not self.reads_batches_directly:
            batches: FetchedBatches = await self._consumer.getmany(
                *partitions, timeout_ms=timeout_ms, max_records=max_records
            )
            return batches
        return await _getmany_directly(self._consumer, partitions, timeout_ms, max_records)


async def _getmany_directly(
    consumer: AIOKafkaConsumer,
    partitions: tuple[TopicPartition, ...],
    timeout_ms: int,
    max_records: int | None,
) -> FetchedBatches:
    # AIOKafkaConsumer.getmany() and Fetcher.fetched_records() in one, taking records
    # through BatchReader instead of FetchResult.getall().
    if consumer._closed:
        raise ConsumerStoppedError()
    if max_records is not None and max_records < 1:
        raise ValueError("`max_records` must be a positive Integer")
    consumer._coordinator.check_errors()
    fetcher = consumer._fetcher
    subscription = fetcher._subscriptions
    limit = max_records or consumer._max_poll_records or _NO_LIMIT
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_ms / 1000
    with consumer._subscription.fetch_context():
        while True:
            # Records fetched before a rebalance may not be this member's after it.
            if subscription.reassignment_in_progress:
                await subscription.wait_for_assignment()
            drained = _drain_fetched(fetcher, partitions, limit)
            remaining = deadline - loop.time()
            if drained or remaining <= 0:
                return drained
            waiter = fetcher._create_fetch_waiter()
            done, _ = await asyncio.wait([waiter], timeout=remaining)
            if not done or fetcher._closed:
                waiter.cancel()
                return {}
            waiter.result()  # raises what the fetch routine failed with (authorization)


def _drain_fetched(
    fetcher: Any, partitions: tuple[TopicPartition, ...], limit: int
) -> FetchedBatches:
    """Take up to ``limit`` records from what the fetcher holds, partition by partition."""
    buffered = fetcher._records
    drained: dict[TopicPartition, Sequence[FetchedRecord]] = {}
    for tp in list(buffered):
        if partitions and tp not in partitions:
            if not fetcher._subscriptions.is_assigned(tp):
                del buffered[tp]  # a revoked partition's leftovers
            continue
        result = buffered[tp]
        if type(result) is not aiokafka_fetcher.FetchResult:
            # A fetch error: raised once, unless records are already taken in this call
            # (then it is raised by the next one).
            if drained:
                return drained
            del buffered[tp]
            fetcher._notify(fetcher._wait_consume_future)
            result.check_raise()
        records = _take(result, tp, limit)
        if not result.has_more():
            del buffered[tp]
            fetcher._notify(fetcher._wait_consume_future)  # the fetch routine may go on
        if records:
            drained[tp] = records
            limit -= len(records)
            if limit <= 0:
                break
    return drained


def _take(result: Any, tp: TopicPartition, limit: int) -> Sequence[FetchedRecord]:
    """Up to ``limit`` records of one fetch result; moves the consumer's position past them."""
    # Also drops the result if the partition was revoked, paused or sought meanwhile.
    if not result.check_assignment(tp) or not result.has_more():
        return []
    partition_records = result._partition_records
    reader = BatchReader.of(partition_records)
    if reader is None:
        # Iterated by the public path already (getmany() on the same consumer): finish
        # this result that way, so that no record is read twice or skipped.
        fallback: list[FetchedRecord] = result.getall(limit)
        return fallback
    records = reader.take(limit)
    result._update_position()
    if reader.is_exhausted():
        result._partition_records = None
    return records


class BatchReader:
    """Hands out the records of one ``PartitionRecords`` batch by batch.

    Installed as the ``PartitionRecords``' own record iterator, so that its state (the rest
    of a batch cut by ``max_records``) stays with the fetch result, is dropped with it on a
    seek or a rebalance, and a public ``getmany()`` on the same consumer would continue
    where this left off (:meth:`__next__`). The rules per batch are aiokafka 0.14's
    ``PartitionRecords._unpack_records``: a bad CRC raises ``CorruptRecordException``;
    reading committed, batches of aborted transactions are skipped; control batches are
    skipped; records below the fetch offset (the head of a batch fetched from its middle)
    are skipped; after a batch, the next fetch offset is the batch's end, even when
    compaction removed its last records.

    One difference, on purpose: when a ``max_records`` limit falls exactly at the end of a
    batch, the position moves to the batch's end at once, where aiokafka's generator,
    suspended on the batch's last record, moves it there on the next call. The two differ
    only for a batch whose last records compaction removed, and only by offsets that hold
    no record; no record is skipped or handed out twice.
    """

    __slots__ = ("_batches", "_error", "_owner", "_rest", "_rest_at", "_rest_end")

    def __init__(self, owner: Any) -> None:
        self._owner = owner
        self._batches = owner._records
        self._rest: list[Any] = []  # records of a batch cut by a limit, from _rest_at on
        self._rest_at = 0
        self._rest_end = 0  # that batch's next offset
        self._error: Exception | None = None

    @classmethod
    def of(cls, owner: Any) -> BatchReader | None:
        """``owner``'s reader, installed now if its public iterator has not started yet;
        ``None`` if the public iterator is under way."""
        current = owner._records_iterator
        if type(current) is cls:
            return current
        if current is None or inspect.getgeneratorstate(current) != inspect.GEN_CREATED:
            return None
        current.close()
        reader = cls(owner)
        owner._records_iterator = reader
        return reader

    def is_exhausted(self) -> bool:
        """Whether every record has been handed out (and no error is left to raise)."""
        return (
            self._error is None
            and self._rest_at >= len(self._rest)
            and not self._batches.has_next()
        )

    def take(self, limit: int) -> list[Any]:
        """Up to ``limit`` records, in offset order; the owner's next fetch offset follows."""
        owner = self._owner
        taken: list[Any] = []
        if self._rest_at < len(self._rest):
            taken = self._take_rest(limit)
        while len(taken) < limit and self._error is None and self._batches.has_next():
            try:
                records, end = self._next_batch()
            except CorruptRecordException as exc:
                self._error = exc
                break
            if records is None:
                owner.next_fetch_offset = end
                continue
            room = limit - len(taken)
            if len(records) <= room:
                taken += records
                owner.next_fetch_offset = end
            else:
                taken += records[:room]
                owner.next_fetch_offset = records[room - 1].offset + 1
                self._rest, self._rest_at, self._rest_end = records, room, end
        if not taken and self._error is not None:
            error, self._error = self._error, None
            self._batches = _NO_BATCHES  # the batch is fetched again, as aiokafka does
            raise error
        return taken

    def _take_rest(self, limit: int) -> list[Any]:
        start = self._rest_at
        stop = min(len(self._rest), start + limit)
        taken = self._rest[start:stop]
        self._rest_at = stop
        if stop == len(self._rest):
            self._owner.next_fetch_offset = self._rest_end
            self._rest = []
            self._rest_at = 0
        else:
            self._owner.next_fetch_offset = taken[-1].offset + 1
        return taken

    def _next_batch(self) -> tuple[list[Any] | None, int]:
        """The next batch's records to hand out (``None`` for a batch skipped whole) and
        the batch's next offset."""
        owner = self._owner
        batch = self._batches.next_batch()
        if owner._check_crcs and not batch.validate_crc():
            raise CorruptRecordException(f"Invalid CRC - {owner._tp}")
        if (
            owner._isolation_level == aiokafka_fetcher.READ_COMMITTED
            and batch.producer_id is not None
        ):
            owner._consume_aborted_up_to(batch.base_offset)
            if batch.is_control_batch and owner._contains_abort_marker(batch):
                owner._aborted_producers.discard(batch.producer_id)
            if batch.is_transactional and batch.producer_id in owner._aborted_producers:
                return None, batch.next_offset
        if batch.is_control_batch:
            return None, batch.next_offset
        records = list(batch)
        start = owner.next_fetch_offset
        if records and records[0].offset < start:
            records = [record for record in records if record.offset >= start]
        return records, batch.next_offset

    def __iter__(self) -> BatchReader:
        return self

    def __next__(self) -> Any:
        """One ``ConsumerRecord``, for a public ``getmany()`` on the same consumer."""
        records = self.take(1)
        if not records:
            raise StopIteration
        return self._owner._consumer_record(self._owner._tp, records[0])


class _NoBatches:
    """The batches left after a corrupt one: none (the fetch result is dropped)."""

    def has_next(self) -> bool:
        return False


_NO_BATCHES: Final = _NoBatches()
