"""Deciding, off the record path, where the losses and duplicates of mirrored topics came from.

:class:`MirrorAttributor` is an event subscriber: ``handle`` only notes what to look up
(a confirmed gap, a run of duplicates of one stream) in a bounded queue and returns; a
few worker tasks (``lookup_concurrency``) read the source cluster
(:mod:`gapwatch.kafka.source_log`), retry on source errors with a growing pause, let the
core decide (:mod:`gapwatch.core.origin`, :mod:`gapwatch.core.mirror_duplicates`), write
the decision into the :class:`~gapwatch.gaps.origins.OriginBook` and count it in the
:class:`~gapwatch.monitor.mirror.table.MirrorTable`.

Attributions are re-derived, not stored: a sweep attributes every confirmed gap of a
mirrored topic in the fleet view that has none yet. After a restart or a rebalance the
fleet view is rebuilt from the gap log, so each instance decides again, from the same
source log, the same origin (the decision depends only on what the source holds, which
changes only if retention deletes the range meanwhile: then the answer becomes
``unknown: retention``, which is the truth at that moment). Only gaps this instance
confirmed itself are counted in the metrics, so the fleet counts each loss once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from aiokafka.errors import KafkaError

from gapwatch.core.events import DuplicateRecords, Event, GapConfirmed, GapSplit
from gapwatch.core.mirror_duplicates import DuplicateSplit, split_duplicates
from gapwatch.core.model import Gap
from gapwatch.core.origin import (
    Attribution,
    decide_origin,
    no_source_partition,
    unreachable,
)
from gapwatch.errors import GapwatchError
from gapwatch.gaps.origins import ATTRIBUTED_STATES, OriginBook
from gapwatch.kafka.partition_reader import PartitionMissingError, PartitionReader, ReaderPool
from gapwatch.kafka.source_log import count_copies, scan_for_gap, timestamps_at
from gapwatch.monitor.mirror.table import MirrorTable

log = logging.getLogger(__name__)

T = TypeVar("T")
QUEUE_LIMIT: Final = 10_000
SWEEP_INTERVAL: Final = 1.0
# Gaps whose source could not be read are looked up again at least this often, even when
# the fleet view did not change (a source back after an outage answers them then).
RESWEEP_INTERVAL: Final = 60.0
_BACKOFF_INITIAL: Final = 0.5
_BACKOFF_MAX: Final = 10.0
# What a lookup may meet on the way that a later attempt can get past.
_RETRIED = (KafkaError, OSError, TimeoutError, GapwatchError)


@dataclass(frozen=True, slots=True)
class GapLookup:
    """Find the origin of ``gap``; ``counted``: this instance confirmed it (metrics)."""

    gap: Gap
    counted: bool


@dataclass(frozen=True, slots=True)
class DuplicateLookup:
    """Find who made the duplicates of one stream read in one batch."""

    topic: str
    partition: int
    producer: str
    epoch: int
    seqs: tuple[int, ...]
    offsets: tuple[int, ...]


Lookup = GapLookup | DuplicateLookup


class MirrorAttributor:
    """Queues lookups from tracker events and the fleet view; workers answer them."""

    name = "mirror-attributor"

    def __init__(
        self,
        *,
        book: OriginBook,
        table: MirrorTable,
        sources: Mapping[str, ReaderPool],
        target: ReaderPool,
        fleet_gaps: Callable[[], Iterable[Gap]],
        fleet_version: Callable[[], int],
        max_records: int,
        retries: int,
        concurrency: int,
    ) -> None:
        self._book = book
        self._table = table
        self._sources = sources
        self._target = target
        self._fleet_gaps = fleet_gaps
        self._fleet_version = fleet_version
        self._max_records = max_records
        self._retries = retries
        self._concurrency = concurrency
        self._queue: asyncio.Queue[Lookup] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._queued: set[str] = set()
        self._waiting: dict[str, list[Lookup]] = {}
        self._swept_version = -1
        self._swept_at = 0.0
        self._tasks: list[asyncio.Task[None]] = []

    # --- noting what to look up (on the consumer's path: quick, never blocks) ----------

    def handle(self, events: Sequence[Event], now: float) -> None:
        """Queue a lookup per confirmed gap and per stream's duplicates of a mirrored topic."""
        runs: dict[tuple[str, int, str, int], tuple[list[int], list[int]]] = {}
        for event in events:
            if isinstance(event, GapConfirmed):
                self._note_gap(event.gap, counted=True)
            elif isinstance(event, GapSplit):
                for piece in (event.left, event.right):
                    self._note_gap(piece, counted=False)
            elif isinstance(event, DuplicateRecords):
                key = event.key
                if self._book.mirrored(key.topic) is None:
                    continue
                seqs, offsets = runs.setdefault(
                    (key.topic, key.partition, key.producer, key.epoch), ([], [])
                )
                seqs.extend(range(event.first_seq, event.last_seq + 1))
                offsets.append(event.offset)
        for (topic, partition, producer, epoch), (seqs, offsets) in runs.items():
            self._offer(
                DuplicateLookup(topic, partition, producer, epoch, tuple(seqs), tuple(offsets))
            )

    def _note_gap(self, gap: Gap, *, counted: bool) -> None:
        if gap.id in self._queued or not self._book.needs_lookup(gap):
            return
        if self._offer(GapLookup(gap, counted)):
            self._queued.add(gap.id)

    def _offer(self, lookup: Lookup) -> bool:
        try:
            self._queue.put_nowait(lookup)
        except asyncio.QueueFull:
            cluster = self._cluster_of(lookup)
            self._table.stats(cluster).dropped += 1
            log.warning("mirror lookup queue full: dropped a lookup on %s", cluster)
            return False
        self._table.pending = self._queue.qsize()
        return True

    def sweep(self, now: float | None = None) -> int:
        """Queue every loss in the fleet view on a mirrored topic with no origin yet, or
        whose source could not be read (after a restart or rebalance, other instances'
        gaps, a source back after an outage); returns how many. Walks the fleet view only
        when it changed, or ``RESWEEP_INTERVAL`` after the last walk."""
        version = self._fleet_version()
        at = time.monotonic() if now is None else now
        if version == self._swept_version and at - self._swept_at < RESWEEP_INTERVAL:
            return 0
        self._swept_version = version
        self._swept_at = at
        before = len(self._queued)
        for gap in list(self._fleet_gaps()):
            if gap.state in ATTRIBUTED_STATES:
                self._note_gap(gap, counted=False)
        return len(self._queued) - before

    # --- answering ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers and the sweep (the reader pools must be started)."""
        for n in range(self._concurrency):
            self._tasks.append(asyncio.create_task(self._work(), name=f"gapwatch-mirror-{n}"))
        self._tasks.append(asyncio.create_task(self._sweep_forever(), name="gapwatch-mirror-sweep"))

    async def stop(self) -> None:
        """Stop the workers; lookups still queued are dropped (re-derived after restart)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _sweep_forever(self) -> None:
        while True:
            try:
                self.sweep()
            except Exception:
                log.exception("mirror sweep failed")
            await asyncio.sleep(SWEEP_INTERVAL)

    async def _work(self) -> None:
        while True:
            lookup = await self._queue.get()
            self._table.pending = self._queue.qsize()
            cluster = self._cluster_of(lookup)
            if not self._sources[cluster].is_connected:
                # Never connected yet (start-up, or the source is down since start): keep
                # it pending until source_connected(), rather than calling it unreachable
                # before a first attempt could answer.
                self._waiting.setdefault(cluster, []).append(lookup)
                self._table.pending = self._queue.qsize() + self.waiting()
                continue
            try:
                if isinstance(lookup, GapLookup):
                    await self._attribute(lookup)
                else:
                    await self._split_duplicates(lookup)
            except Exception:
                # A bug here must not end the worker: the lookup is lost, logged, counted.
                self._table.stats(cluster).failed += 1
                log.exception("mirror lookup failed")
            finally:
                if isinstance(lookup, GapLookup):
                    self._queued.discard(lookup.gap.id)

    def waiting(self) -> int:
        """Lookups held back until their source connects."""
        return sum(len(lookups) for lookups in self._waiting.values())

    def source_connected(self, cluster: str) -> None:
        """Queue again the lookups that waited for ``cluster`` to connect."""
        for lookup in self._waiting.pop(cluster, []):
            try:
                self._queue.put_nowait(lookup)
            except asyncio.QueueFull:
                self._table.stats(cluster).dropped += 1
                if isinstance(lookup, GapLookup):
                    self._queued.discard(lookup.gap.id)
        self._table.pending = self._queue.qsize() + self.waiting()

    def _cluster_of(self, lookup: Lookup) -> str:
        topic = lookup.gap.topic if isinstance(lookup, GapLookup) else lookup.topic
        mirrored = self._book.mirrored(topic)
        return "" if mirrored is None else mirrored.source_cluster

    async def _attribute(self, lookup: GapLookup) -> None:
        gap = lookup.gap
        mirrored = self._book.mirrored(gap.topic)
        assert mirrored is not None
        pool = self._sources[mirrored.source_cluster]
        stats = self._table.stats(mirrored.source_cluster)

        async def scan(reader: PartitionReader) -> Attribution:
            found = await scan_for_gap(
                reader, source_topic=mirrored.source_topic, gap=gap, max_records=self._max_records
            )
            return decide_origin(first_seq=gap.first_seq, last_seq=gap.last_seq, scan=found)

        try:
            attribution = await self._with_retries(
                pool, scan, stats_cluster=mirrored.source_cluster
            )
        except PartitionMissingError:
            attribution = no_source_partition(mirrored.source_topic, gap.partition)
        except _RETRIED as exc:
            stats.failed += 1
            attribution = unreachable(f"{type(exc).__name__}: {exc}"[:300])
        else:
            stats.decided += 1
        self._book.decide(gap.id, attribution)
        log.info("gap %s on %s/%s: origin %s", gap.id, gap.topic, gap.partition, attribution.text)
        if lookup.counted:
            self._table.count_missing(
                gap.topic, gap.partition, mirrored.source_cluster, attribution, gap.count
            )

    async def _split_duplicates(self, lookup: DuplicateLookup) -> None:
        mirrored = self._book.mirrored(lookup.topic)
        assert mirrored is not None

        async def target_times(reader: PartitionReader) -> list[int]:
            # Every duplicate's own timestamp: the oldest is where its original starts on
            # the source, whatever the order of offsets and timestamps in the batch.
            return await timestamps_at(
                reader, topic=lookup.topic, partition=lookup.partition, offsets=lookup.offsets
            )

        async def source_split(reader: PartitionReader) -> DuplicateSplit:
            copies = await count_copies(
                reader,
                source_topic=mirrored.source_topic,
                partition=lookup.partition,
                producer=lookup.producer,
                epoch=lookup.epoch,
                seqs=set(lookup.seqs),
                from_ms=min(times),
                to_ms=max(times),
                max_records=self._max_records,
            )
            return split_duplicates(lookup.seqs, copies.copies)

        try:
            times = await self._with_retries(self._target, target_times, stats_cluster=None)
            if not times:
                split = DuplicateSplit(unknown=len(lookup.seqs))
            else:
                pool = self._sources[mirrored.source_cluster]
                split = await self._with_retries(
                    pool, source_split, stats_cluster=mirrored.source_cluster
                )
        except _RETRIED:
            self._table.stats(mirrored.source_cluster).failed += 1
            log.warning(
                "mirror duplicates on %s/%s: source unreadable", lookup.topic, lookup.partition
            )
            split = DuplicateSplit(unknown=len(lookup.seqs))
        self._table.count_duplicates(lookup.topic, lookup.partition, mirrored.source_cluster, split)

    async def _with_retries(
        self,
        pool: ReaderPool,
        ask: Callable[[PartitionReader], Awaitable[T]],
        *,
        stats_cluster: str | None,
    ) -> T:
        """``ask`` with a borrowed reader; on a source error again, up to ``retries``
        more times with a doubling pause. A missing partition is not retried."""
        pause = _BACKOFF_INITIAL
        attempt = 0
        while True:
            try:
                reader = await pool.borrow()
            except _RETRIED as exc:
                error: BaseException = exc
            else:
                try:
                    return await ask(reader)
                except PartitionMissingError:
                    raise
                except _RETRIED as exc:
                    error = exc
                finally:
                    pool.give_back(reader)
            if attempt >= self._retries:
                raise error
            attempt += 1
            if stats_cluster is not None:
                self._table.stats(stats_cluster).retried += 1
            log.warning(
                "mirror lookup failed (%s: %s); retry %d", type(error).__name__, error, attempt
            )
            await asyncio.sleep(pause)
            pause = min(pause * 2, _BACKOFF_MAX)
