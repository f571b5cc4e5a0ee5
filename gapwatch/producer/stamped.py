"""``StampedProducer``: ``AIOKafkaProducer`` with gapwatch stamps, bookkeeping and reports.

How one ``send()`` works, in order (the rules the tests name):

1. **Serialise once.** The key and value serializers run here, and the inner producer
   gets bytes, so nothing is serialised twice.
2. **Partition before stamping.** The partition is the explicit ``partition=``, else the
   configured partitioner called exactly as aiokafka calls it
   (``partitioner(key_bytes, all_partitions, available_partitions)`` with the same lists
   built from the same metadata; aiokafka's ``DefaultPartitioner`` by default: murmur2
   of the key, or a random available partition for ``key=None``). The chosen partition
   is passed on as ``partition=``, so aiokafka does not hash again.
3. **One turn per partition** (:class:`gapwatch.producer.lanes.Lane`): the next sequence is
   assigned and the record enqueued into aiokafka's batch while holding the partition's
   FIFO turn, so sequences reach the batch in assignment order even when ``send()``
   awaits. Uncontended, taking the turn does not await.
4. **A used-up sequence is never skipped silently.** If enqueueing raises or is
   cancelled after the sequence was assigned, that sequence is recorded as failed with
   the error the caller received (the application was told).
5. **Headers** (:class:`StampHeaders`). The three stamp headers are appended
   after the caller's headers, whose order is kept. Stamp headers already present in the
   caller's list (a record being forwarded) are replaced, since two stamps would make the
   record malformed.
6. **Outcome.** The delivery future is kept with its sequence and booked when it
   completes (:meth:`gapwatch.producer.lanes.Lane.sweep`): acknowledged, sent without
   acknowledgement (``acks=0``: the future resolves to ``None``) or failed with its
   exception.

Besides ``send()``, the batch API (``create_batch``/``send_batch``, see
:mod:`gapwatch.producer.batch`) stamps a batch's records with consecutive sequences under
the same turn, and the tools API (``stamp``/``send_stamped``) stamps now and sends later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import REGISTRY, CollectorRegistry

from gapwatch.core.model import ProducerReport
from gapwatch.core.wire import HEADER_EPOCH, HEADER_NAMES, HEADER_PRODUCER, HEADER_SEQ
from gapwatch.kafka.startup_errors import explained_start
from gapwatch.producer.aiokafka_internals import DirectEnqueue, has_dead_sender
from gapwatch.producer.batch import StampedBatch
from gapwatch.producer.bookkeeping import DeliveryBook
from gapwatch.producer.config import (
    ProducerConfigError,
    ReportConfig,
    acks_label,
    default_acks_label,
)
from gapwatch.producer.identity import resolve_identity
from gapwatch.producer.lanes import LaneTable, sweep_periodically
from gapwatch.producer.metrics import collector_for
from gapwatch.producer.partitioning import PartitionCache
from gapwatch.producer.reports import ReportPublisher, ReportStats

log = logging.getLogger(__name__)

Partitioner = Callable[[bytes | None, list[int], list[int]], int]
Header = tuple[str, bytes]
SWEEP_INTERVAL_S: Final = 0.5
# ReportConfig is frozen, so one default instance is safe to share.
_DEFAULT_REPORTS: Final = ReportConfig()


@dataclass(frozen=True, slots=True)
class StampedRecord:
    """A record with its partition chosen and its sequence assigned, not yet sent.

    Made by :meth:`StampedProducer.stamp` for tools that need to act on a stamped record
    themselves (the load generator's fault injection); applications use ``send()``.
    """

    topic: str
    partition: int
    seq: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None
    headers: tuple[Header, ...]


class StampHeaders:
    """Builds the headers of each record of one producer life (id and epoch): the
    caller's headers, in order and without any old stamp, then this producer's stamp."""

    __slots__ = ("_warned_restamp", "epoch_header", "producer_header")

    def __init__(self, producer_id: str, epoch: int) -> None:
        self.producer_header: Final = (HEADER_PRODUCER, producer_id.encode("utf-8"))
        self.epoch_header: Final = (HEADER_EPOCH, b"%d" % epoch)
        self._warned_restamp = False

    def build(self, topic: str, headers: Iterable[Header] | None, seq: int) -> list[Header]:
        """``headers`` without any old stamp, then this producer's stamp for ``seq``."""
        seq_header = (HEADER_SEQ, b"%d" % seq)
        if not headers:
            return [self.producer_header, self.epoch_header, seq_header]
        result = list(headers)
        for name, _ in result:
            if name in HEADER_NAMES:
                # A record forwarded from another stamped topic: two stamps would make it
                # malformed (rule 5).
                result = [h for h in result if h[0] not in HEADER_NAMES]
                if not self._warned_restamp:
                    # Once per producer: a forwarding pipeline would otherwise log per record.
                    self._warned_restamp = True
                    log.warning(
                        "gapwatch: records to %s already carry gapwatch headers; "
                        "replacing them with this producer's stamp",
                        topic,
                    )
                break
        result.append(self.producer_header)
        result.append(self.epoch_header)
        result.append(seq_header)
        return result


class StampedProducer:
    """A drop-in ``AIOKafkaProducer`` that stamps every record for gapwatch.

    Takes every ``AIOKafkaProducer`` keyword argument, plus:

    * ``producer_id``: stable name of this producer instance (default ``"<host>/<pid>"``);
    * ``epoch``: this incarnation's number, strictly greater on every restart (default
      the start time in ms);
    * ``reports``: a :class:`ReportConfig` for the control topic, or ``None`` to publish
      no reports;
    * ``registry``: the Prometheus registry for the producer metrics (``None``: none);
    * ``direct_enqueue``: append records to aiokafka's batches directly when the installed
      aiokafka is one this was checked against (default; see
      :mod:`gapwatch.producer.aiokafka_internals`), or ``False`` to always go through
      ``AIOKafkaProducer.send()``.

    Transactions (``transactional_id``) are not supported: records of an aborted
    transaction never become visible, which the monitor would read as loss.
    """

    def __init__(
        self,
        *,
        producer_id: str | None = None,
        epoch: int | None = None,
        reports: ReportConfig | None = _DEFAULT_REPORTS,
        registry: CollectorRegistry | None = REGISTRY,
        key_serializer: Callable[[Any], bytes | None] | None = None,
        value_serializer: Callable[[Any], bytes | None] | None = None,
        partitioner: Partitioner | None = None,
        direct_enqueue: bool = True,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("transactional_id") is not None:
            raise ProducerConfigError(
                "transactional_id", "transactions are not supported by StampedProducer"
            )
        self.producer_id, self.epoch = resolve_identity(producer_id, epoch)
        if reports is not None:
            reports.validate()
        self._key_serializer = key_serializer
        self._value_serializer = value_serializer
        self._partitioner: Partitioner = (
            DefaultPartitioner() if partitioner is None else partitioner
        )
        self._inner = AIOKafkaProducer(**kwargs)
        self._connection = kwargs
        acks = kwargs.get("acks")
        # aiokafka's default is off; reports say so, for the durability audit.
        self._is_idempotent = bool(kwargs.get("enable_idempotence"))
        self._acks_label = (
            default_acks_label(idempotent=self._is_idempotent) if acks is None else acks_label(acks)
        )
        self._book = DeliveryBook(producer=self.producer_id, epoch=self.epoch)
        self._lane_table = LaneTable(self._book)
        self._partition_cache = PartitionCache(self._inner.client.cluster)
        # None: every record goes through AIOKafkaProducer.send().
        self._direct = DirectEnqueue.of(self._inner) if direct_enqueue else None
        self._stamps = StampHeaders(self.producer_id, self.epoch)
        self._report_stats = ReportStats()
        self._collector = collector_for(registry)
        self._collector.attach(self._book, self._report_stats)
        self._publisher = (
            None
            if reports is None
            else ReportPublisher(
                book=self._book,
                config=reports,
                connection=kwargs,
                stats=self._report_stats,
                acks_label=self._acks_label,
                idempotence=self._is_idempotent,
                prepare=self._lane_table.sweep_all,
            )
        )
        self._sweeper: asyncio.Task[None] | None = None
        self._started = False
        self._stopped = False

    # --- life cycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (as ``AIOKafkaProducer.start``) and start publishing reports.

        Raises :class:`~gapwatch.errors.KafkaStartupError` (one line naming each server and
        why it failed) when the cluster cannot be used.
        """
        async with explained_start(self._connection):
            await self._inner.start()
        self._started = True
        self._sweeper = asyncio.create_task(
            sweep_periodically(self._lane_table, SWEEP_INTERVAL_S),
            name="gapwatch-producer-sweeper",
        )
        if self._publisher is not None:
            self._publisher.start()

    async def stop(self, *, final_report: bool = True) -> None:
        """Flush, close, then publish the final report of every stream.

        ``final_report=False`` closes without any further report, as a crash would; the
        load generator uses it to simulate one.
        """
        if self._stopped:
            return
        self._stopped = True
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        try:
            await self._inner.stop()  # flushes: every delivery future resolves
        finally:
            try:
                self._lane_table.sweep_all()
                if self._publisher is not None:
                    await self._publisher.stop(final=final_report and self._started)
            finally:
                self._partition_cache.close()
                self._collector.detach(self._book)

    async def flush(self) -> None:
        """Wait until every record sent so far has its outcome (as ``AIOKafkaProducer``)."""
        await self._inner.flush()
        self._lane_table.sweep_all()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- sending ---------------------------------------------------------------------

    async def partitions_for(self, topic: str) -> set[int]:
        """All partitions of ``topic`` (as ``AIOKafkaProducer.partitions_for``)."""
        partitions: set[int] = await self._inner.partitions_for(topic)
        return partitions

    async def send(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Iterable[Header] | None = None,
    ) -> asyncio.Future[Any]:
        """Stamp and enqueue one record; returns the delivery future (as aiokafka's)."""
        assert not (value is None and key is None), "Need at least one: key or value"
        key_bytes = key if self._key_serializer is None else self._key_serializer(key)
        value_bytes = value if self._value_serializer is None else self._value_serializer(value)
        # The hot path: choose_partition's cache lookup, the stamp of a record without
        # headers and the direct enqueue are inlined (a call costs about as much as the
        # work it does; see the Producer section of docs/benchmarks.md).
        cached = self._partition_cache.get(topic)
        if cached is None or partition is not None:
            partition = await self.choose_partition(topic, key_bytes, partition=partition)
        else:
            partition = self._partitioner(key_bytes, cached[1], cached[2])
        lane = self._lane_table.lane(topic, partition)
        if not lane.take_turn():
            await lane.wait_turn()  # rule 3
        try:
            book = lane.book
            seq = self._book.assign(book)
            if headers:
                stamped = self._stamps.build(topic, headers, seq)
            else:
                stamps = self._stamps
                stamped = [stamps.producer_header, stamps.epoch_header, (HEADER_SEQ, b"%d" % seq)]
            try:
                future: asyncio.Future[Any]
                direct = self._direct
                if direct is not None:
                    direct.serialize(key_bytes, value_bytes, stamped)
                    future = await direct.add_message(
                        lane.tp,
                        key_bytes,
                        value_bytes,
                        direct.timeout_s,
                        timestamp_ms=timestamp_ms,
                        headers=stamped,
                    )
                else:
                    future = await self._inner.send(
                        topic, value_bytes, key_bytes, partition, timestamp_ms, stamped
                    )
            except BaseException as exc:
                self._book.failed(book, seq, exc)  # rule 4: told, so failed, not skipped
                raise
            lane.await_outcome(seq, 1, future)
        finally:
            lane.release_turn()
        return future

    async def send_and_wait(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Iterable[Header] | None = None,
    ) -> Any:
        """Send one record and wait for its outcome (as aiokafka's)."""
        future = await self.send(topic, value, key, partition, timestamp_ms, headers)
        return await future

    def create_batch(self) -> StampedBatch:
        """An empty batch for :meth:`send_batch` (as ``AIOKafkaProducer.create_batch``)."""
        return StampedBatch(
            probe=self._inner.create_batch(),
            key_serializer=self._key_serializer,
            value_serializer=self._value_serializer,
        )

    async def send_batch(
        self, batch: StampedBatch, topic: str, *, partition: int
    ) -> asyncio.Future[Any]:
        """Stamp the records of ``batch`` with consecutive sequences and enqueue it.

        Sequences are assigned only now, since only now are the batch's topic and
        partition known and its place in the partition's order fixed. The real batch is
        built under the partition's turn; the probe of :class:`StampedBatch` reserved
        room for the longest possible stamp, so every record fits.
        """
        partition = await self.choose_partition(topic, None, partition=partition)
        lane = self._lane_table.lane(topic, partition)
        if not lane.take_turn():
            await lane.wait_turn()
        count = batch.record_count()
        try:
            first = self._book.assign_many(lane.book, count)
            try:
                real = self._inner.create_batch()
                for offset, (timestamp, key, value, headers) in enumerate(batch.records()):
                    stamped = self._stamps.build(topic, headers, first + offset)
                    appended = real.append(
                        timestamp=timestamp, key=key, value=value, headers=stamped
                    )
                    assert appended is not None, "stamped record did not fit its batch"
                real.close()
                future: asyncio.Future[Any] = await self._inner.send_batch(
                    real, topic, partition=partition
                )
            except BaseException as exc:
                if count:
                    self._book.failed(lane.book, first, exc, last=first + count - 1)
                raise
            if count:
                lane.await_outcome(first, count, future)
        finally:
            lane.release_turn()
        return future

    # --- tools (load generator): stamp now, send later ------------------------------------

    async def stamp(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Iterable[Header] | None = None,
    ) -> StampedRecord:
        """Choose the partition and assign the next sequence without sending.

        For tools that inject faults honestly: a record stamped and never sent is a
        sequence the broker never saw; one sent twice with :meth:`send_stamped` is a
        duplicate; one sent later than a following record is reordered. Only the
        sequence is assigned under the partition's turn; records sent this way bypass
        it, so their order is the caller's.
        """
        assert not (value is None and key is None), "Need at least one: key or value"
        key_bytes = key if self._key_serializer is None else self._key_serializer(key)
        value_bytes = value if self._value_serializer is None else self._value_serializer(value)
        partition = await self.choose_partition(topic, key_bytes, partition=partition)
        lane = self._lane_table.lane(topic, partition)
        if not lane.take_turn():
            await lane.wait_turn()
        try:
            seq = self._book.assign(lane.book)
        finally:
            lane.release_turn()
        return StampedRecord(
            topic=topic,
            partition=partition,
            seq=seq,
            key=key_bytes,
            value=value_bytes,
            timestamp_ms=timestamp_ms,
            headers=tuple(self._stamps.build(topic, headers, seq)),
        )

    async def send_stamped(self, record: StampedRecord) -> asyncio.Future[Any]:
        """Enqueue a record made by :meth:`stamp`, as is (same stamp on every call), with
        ``AIOKafkaProducer.send()``; its outcome is booked like any other."""
        lane = self._lane_table.lane(record.topic, record.partition)
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
            self._book.failed(lane.book, record.seq, exc)
            raise
        lane.await_outcome(record.seq, 1, future)
        return future

    async def choose_partition(
        self, topic: str, key_bytes: bytes | None, *, partition: int | None = None
    ) -> int:
        """The partition a record of ``topic`` with the serialised key ``key_bytes`` goes to.

        ``partition`` is kept if given (and refused with ``AssertionError``, as aiokafka
        refuses it, if the topic has no such partition); else the partitioner chooses,
        called exactly as ``AIOKafkaProducer`` calls it (rule 2). Waits for the topic's
        metadata as ``send()`` does. Uses up no sequence.
        """
        cached = self._partition_cache.get(topic)
        if cached is None:
            await self._inner.partitions_for(topic)  # waits for metadata, as send() does
            cached = self._partition_cache.get(topic)
            assert cached is not None
        if partition is not None:
            # Same check as aiokafka's, but before a sequence is used up.
            assert partition >= 0
            assert partition in cached[0], "Unrecognized partition"
            return partition
        return self._partitioner(key_bytes, cached[1], cached[2])

    # --- reports and introspection ---------------------------------------------------

    @property
    def acks(self) -> str:
        """The acks setting as reports show it: ``"0"``, ``"1"`` or ``"all"``."""
        return self._acks_label

    @property
    def is_idempotent(self) -> bool:
        """Whether the wrapped producer is idempotent, as reports show it."""
        return self._is_idempotent

    @property
    def client(self) -> Any:
        """The wrapped producer's ``AIOKafkaClient`` (as ``AIOKafkaProducer.client``)."""
        return self._inner.client

    @property
    def has_dead_sender(self) -> bool:
        """Whether aiokafka's background sender task ended while this producer is open:
        every later send then fails (see
        :func:`~gapwatch.producer.aiokafka_internals.has_dead_sender`)."""
        return has_dead_sender(self._inner)

    @property
    def enqueues_directly(self) -> bool:
        """Whether ``send()`` appends to aiokafka's batches directly (see
        :mod:`gapwatch.producer.aiokafka_internals`) instead of calling its ``send()``."""
        return self._direct is not None

    def reports(self, *, final: bool = False) -> list[ProducerReport]:
        """A report of every stream as of now (what the next final report would say)."""
        self._lane_table.sweep_all()
        return [self._book.report(book, final=final) for book in self._book.streams()]

    async def publish_reports(self) -> None:
        """Publish the reports of changed streams now instead of at the next interval."""
        if self._publisher is not None:
            await self._publisher.publish_changed()

    @property
    def report_stats(self) -> ReportStats:
        """Counts of reports published and failed."""
        return self._report_stats
