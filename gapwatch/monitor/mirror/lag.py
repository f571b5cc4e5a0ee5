"""Mirror lag: how far each mirrored partition this instance owns trails its source.

Every ``interval`` seconds, for each owned partition of a mirrored topic: the newest record
timestamp ``T`` near the end of the target partition (a few records read from its end),
then, on the source partition of the same number, the first offset with a timestamp after
``T`` (one ``ListOffsets`` by time) and the source's end offset. Then

* ``lag_records`` = source end offset - that offset: records the source holds that are
  newer than anything on the target (0 when there is no such offset);
* ``lag_seconds`` = now - the timestamp of that first unmirrored record: how long the
  oldest record not yet copied has waited (0 when nothing waits). A stalled mirror makes
  it grow steadily even when the source is quiet, which is what the stall alert needs.

It rests on timestamps being in order within a partition, as for one producer; records
whose timestamps run backwards by more than the gap between the two ends are misplaced
by the measure (the gap attribution does not depend on it). Cheap: per partition and
interval, a handful of target records and three offset requests on the source.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping

from aiokafka.errors import KafkaError

from gapwatch.errors import GapwatchError
from gapwatch.gaps.origins import OriginBook
from gapwatch.kafka.partition_reader import ReaderPool
from gapwatch.kafka.source_log import newest_timestamp, unmirrored
from gapwatch.monitor.mirror.table import MirrorTable

log = logging.getLogger(__name__)


class MirrorLag:
    """Measures the lag of every owned mirrored partition, every ``interval`` seconds."""

    def __init__(
        self,
        *,
        book: OriginBook,
        table: MirrorTable,
        sources: Mapping[str, ReaderPool],
        target: ReaderPool,
        owned: Callable[[], Iterable[tuple[str, int]]],
        interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._book = book
        self._table = table
        self._sources = sources
        self._target = target
        self._owned = owned
        self._interval = interval
        self._clock = clock

    async def run(self) -> None:
        """Measure forever (cancel to stop)."""
        while True:
            await self.measure()
            await asyncio.sleep(self._interval)

    async def measure(self) -> None:
        """One round over the owned mirrored partitions; a failing one keeps its last value
        (failures are counted per source and logged once per round)."""
        owned: set[tuple[str, int, str]] = set()
        failures: list[str] = []
        for topic, partition in list(self._owned()):
            mirrored = self._book.mirrored(topic)
            if mirrored is None:
                continue
            cluster = mirrored.source_cluster
            owned.add((topic, partition, cluster))
            try:
                await self._measure_one(topic, partition, cluster, mirrored.source_topic)
            except (KafkaError, OSError, TimeoutError, GapwatchError) as exc:
                self._table.lag_errors[cluster] = self._table.lag_errors.get(cluster, 0) + 1
                failures.append(f"{topic}/{partition}: {type(exc).__name__}: {exc}")
        if failures:
            log.warning(
                "mirror lag of %d partitions not read; first %s", len(failures), failures[0]
            )
        for key in list(self._table.rows):
            if key not in owned:
                self._table.clear_lag(*key)

    async def _measure_one(
        self, topic: str, partition: int, cluster: str, source_topic: str
    ) -> None:
        reader = await self._target.borrow()
        try:
            newest = await newest_timestamp(reader, topic=topic, partition=partition)
        finally:
            self._target.give_back(reader)
        pool = self._sources[cluster]
        reader = await pool.borrow()
        try:
            behind = await unmirrored(
                reader, topic=source_topic, partition=partition, newest_mirrored_ms=newest
            )
        finally:
            pool.give_back(reader)
        waited = 0.0
        if behind.oldest_timestamp_ms is not None:
            waited = max(0.0, self._clock() - behind.oldest_timestamp_ms / 1000)
        self._table.set_lag(topic, partition, cluster, behind.records, waited)
