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
3. **One turn per partition** (:mod:`gapwatch.producer.lanes`): the next sequence is
   assigned and the record enqueued into aiokafka's batch while holding the partition's
   FIFO turn, so sequences reach the batch in assignment order even when ``send()``
   awaits. Uncontended, taking the turn does not await.
4. **A used-up sequence is never skipped silently.** If enqueueing raises or is
   cancelled after the sequence was assigned, that sequence is recorded as failed with
   the error the caller received (the application was told).
5. **Headers** (:mod:`gapwatch.producer.headers`). The three stamp headers are appended
   after the caller's headers, whose order is kept. Stamp headers already present in the
   caller's list (a record being forwarded) are replaced, since two stamps would make the
   record malformed.
6. **Outcome.** The delivery future is kept with its sequence and booked when it
   completes (:func:`gapwatch.producer.lanes.sweep`): acknowledged, sent without
   acknowledgement (``acks=0``: the future resolves to ``None``) or failed with its
   exception.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Final, Self

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import REGISTRY, CollectorRegistry

from gapwatch.core.model import ProducerReport
from gapwatch.core.wire import HEADER_EPOCH, HEADER_PRODUCER, HEADER_SEQ, validate_producer_id
from gapwatch.producer.batch import StampedBatch, submit_batch
from gapwatch.producer.bookkeeping import DeliveryBook
from gapwatch.producer.compat import StampedRecord, acks_label, has_known_send_path
from gapwatch.producer.config import ProducerConfigError, ReportConfig
from gapwatch.producer.headers import StampHeaders
from gapwatch.producer.identity import default_producer_id, new_epoch
from gapwatch.producer.lanes import LaneTable, release_turn, sweep, sweep_periodically, wait_turn
from gapwatch.producer.metrics import ReportStats, collector_for
from gapwatch.producer.partitioning import PartitionCache
from gapwatch.producer.reports import ReportPublisher
from gapwatch.producer.stamp_ahead import StampAhead

Headers = Sequence[tuple[str, bytes]]
Partitioner = Callable[[bytes | None, list[int], list[int]], int]
SWEEP_INTERVAL_S: Final = 0.5


class StampedProducer:
    """A drop-in ``AIOKafkaProducer`` that stamps every record for gapwatch.

    Takes every ``AIOKafkaProducer`` keyword argument, plus:

    * ``producer_id``: stable name of this producer instance (default ``"<host>/<pid>"``);
    * ``epoch``: this incarnation's number, strictly greater on every restart (default
      the start time in ms);
    * ``reports``: a :class:`ReportConfig` for the control topic, or ``None`` to publish
      no reports;
    * ``registry``: the Prometheus registry for the producer metrics (``None``: none).

    Transactions (``transactional_id``) are not supported: records of an aborted
    transaction never become visible, which the monitor would read as loss.
    """

    def __init__(
        self,
        *,
        producer_id: str | None = None,
        epoch: int | None = None,
        reports: ReportConfig | None = ReportConfig(),  # noqa: B008  # frozen value
        registry: CollectorRegistry | None = REGISTRY,
        key_serializer: Callable[[Any], bytes | None] | None = None,
        value_serializer: Callable[[Any], bytes | None] | None = None,
        partitioner: Partitioner | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("transactional_id") is not None:
            raise ProducerConfigError(
                "transactional_id", "transactions are not supported by StampedProducer"
            )
        self.producer_id = validate_producer_id(
            default_producer_id() if producer_id is None else producer_id
        )
        self.epoch = new_epoch() if epoch is None else epoch
        if not 0 <= self.epoch < 2**64:
            raise ProducerConfigError("epoch", "must be an unsigned 64-bit integer")
        if reports is not None:
            reports.validate()
        self._key_serializer = key_serializer
        self._value_serializer = value_serializer
        self._partitioner: Partitioner = (
            DefaultPartitioner() if partitioner is None else partitioner
        )
        self._inner = AIOKafkaProducer(**kwargs)
        self._acks_label = acks_label(kwargs)
        self._book = DeliveryBook(producer=self.producer_id, epoch=self.epoch)
        self._lane_table = LaneTable(self._book)
        self._lanes = self._lane_table.lanes  # the same dict, one lookup less in send()
        self._partition_cache = PartitionCache(self._inner.client.cluster)
        # The hot path enqueues into aiokafka's accumulator directly instead of calling
        # AIOKafkaProducer.send(), which would look the metadata up again and re-check
        # the partition (two set builds and a coroutine per record: measured 10-15% of
        # throughput, see docs/benchmarks.md). Only with the aiokafka versions pinned in
        # pyproject.toml whose send() is known to do nothing more; otherwise send().
        self._accumulator = (
            self._inner._message_accumulator if has_known_send_path(self._inner) else None
        )
        self._batch_timeout_s = self._inner._request_timeout_ms / 1000
        self._producer_header = (HEADER_PRODUCER, self.producer_id.encode("utf-8"))
        self._epoch_header = (HEADER_EPOCH, b"%d" % self.epoch)
        self._stamps = StampHeaders(self._producer_header, self._epoch_header)
        self._stamp_ahead = StampAhead(
            inner=self._inner,
            ledger=self._book,
            lanes=self._lane_table,
            stamps=self._stamps,
            choose_partition=self._choose_partition,
            key_serializer=key_serializer,
            value_serializer=value_serializer,
        )
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
                prepare=self._lane_table.sweep_all,
            )
        )
        self._sweeper: asyncio.Task[None] | None = None
        self._started = False
        self._stopped = False

    # --- life cycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (as ``AIOKafkaProducer.start``) and start publishing reports."""
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
        headers: Iterable[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        """Stamp and enqueue one record; returns the delivery future (as aiokafka's)."""
        assert not (value is None and key is None), "Need at least one: key or value"
        # This is the hot path: the steps of _choose_partition, LaneTable.lane and the
        # bookkeeping are inlined here (each call costs about as much as the work it does).
        key_bytes = key if self._key_serializer is None else self._key_serializer(key)
        value_bytes = value if self._value_serializer is None else self._value_serializer(value)
        cached = self._partition_cache.get(topic)
        if cached is None or partition is not None:
            partition = await self._choose_partition(topic, partition, key_bytes)
        else:
            partition = self._partitioner(key_bytes, cached[1], cached[2])
        lane = self._lanes.get((topic, partition))
        if lane is None:
            lane = self._lane_table.new_lane(topic, partition)
        if lane.busy:
            await wait_turn(lane)  # rule 3
        else:
            lane.busy = True
        try:
            book = lane.book
            seq = book.next_seq
            book.next_seq = seq + 1
            if not book.dirty:
                self._book.touch(book)
            if headers:
                stamped = self._stamps.build(topic, headers, seq)
            else:
                stamped = [self._producer_header, self._epoch_header, (HEADER_SEQ, b"%d" % seq)]
            try:
                future: asyncio.Future[Any]
                if self._accumulator is not None:
                    # What AIOKafkaProducer.send does once metadata is known and the
                    # partition chosen: size check, then append to the partition's batch.
                    self._inner._serialize(key_bytes, value_bytes, stamped)
                    future = await self._accumulator.add_message(
                        lane.tp,
                        key_bytes,
                        value_bytes,
                        self._batch_timeout_s,
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
            pending = lane.pending
            pending.append((seq, 1, future))
            if pending[0][2].done():
                sweep(lane, self._book)
        finally:
            if lane.waiters:
                release_turn(lane)
            else:
                lane.busy = False
        return future

    async def send_and_wait(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Iterable[tuple[str, bytes]] | None = None,
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
        """Stamp the records of ``batch`` with consecutive sequences and enqueue it."""
        partition = await self._choose_partition(topic, partition, None)
        return await submit_batch(
            batch,
            topic,
            partition,
            lane=self._lane_table.lane(topic, partition),
            inner=self._inner,
            ledger=self._book,
            stamps=self._stamps,
        )

    # --- tools (load generator): gapwatch.producer.stamp_ahead does the work ----------

    async def stamp(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Iterable[tuple[str, bytes]] | None = None,
    ) -> StampedRecord:
        """Choose the partition and assign the next sequence without sending.

        For tools that inject faults honestly: a record stamped and never sent is a
        sequence the broker never saw; one sent twice with :meth:`send_stamped` is a
        duplicate; one sent later than a following record is reordered. Records sent
        this way bypass the per-partition turn, so their order is the caller's.
        """
        return await self._stamp_ahead.stamp(topic, value, key, partition, timestamp_ms, headers)

    async def send_stamped(self, record: StampedRecord) -> asyncio.Future[Any]:
        """Enqueue a record made by :meth:`stamp`, as is (same stamp on every call)."""
        return await self._stamp_ahead.send(record)

    # --- reports and introspection ---------------------------------------------------

    @property
    def acks(self) -> str:
        """The acks setting as reports show it: ``"0"``, ``"1"`` or ``"all"``."""
        return self._acks_label

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

    # --- internals -------------------------------------------------------------------

    async def _choose_partition(self, topic: str, partition: int | None, key: Any) -> int:
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
        return self._partitioner(key, cached[1], cached[2])
