"""The monitor's mirror components without Kafka: what the attributor queues, and the
``gapwatch_mirror_*`` families at both granularities."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket

from monitor_factories import make_gap

from gapwatch.core.events import DuplicateRecords, GapConfirmed, GapOpened
from gapwatch.core.mirror_duplicates import DuplicateSplit
from gapwatch.core.model import Gap, GapState, StreamKey
from gapwatch.core.origin import Attribution, Origin, Reason
from gapwatch.gaps.metrics import ScalarFamily
from gapwatch.gaps.origins import OriginBook
from gapwatch.kafka.partition_reader import ReaderPool
from gapwatch.monitor.mirror.attributor import MirrorAttributor
from gapwatch.monitor.mirror.metrics import MirrorCollector
from gapwatch.monitor.mirror.sources import keep_connecting
from gapwatch.monitor.mirror.table import MirrorTable


def attributor(book: OriginBook, table: MirrorTable, fleet: list[Gap]) -> MirrorAttributor:
    # Pools are never started here: queuing must not touch Kafka.
    pool = ReaderPool(client_kwargs={"bootstrap_servers": ["unused:9092"]}, size=1)
    return MirrorAttributor(
        book=book,
        table=table,
        sources={"east": pool},
        target=pool,
        fleet_gaps=lambda: fleet,
        fleet_version=lambda: len(fleet),
        max_records=100,
        retries=0,
        concurrency=1,
    )


class TestQueueing:
    def test_a_confirmed_gap_on_a_copy_is_queued_once(self) -> None:
        book, table = OriginBook(aliases=("east",), policy="default"), MirrorTable()
        queue = attributor(book, table, [])
        gap = make_gap(3, opened_at=1.0, topic="east.orders", state=GapState.CONFIRMED)
        queue.handle([GapConfirmed(gap), GapConfirmed(gap)], 2.0)
        assert table.pending == 1

    def test_other_topics_and_open_gaps_are_not_looked_up(self) -> None:
        book, table = OriginBook(aliases=("east",), policy="default"), MirrorTable()
        queue = attributor(book, table, [])
        unmirrored = make_gap(3, opened_at=1.0, topic="orders", state=GapState.CONFIRMED)
        still_open = make_gap(3, opened_at=1.0, topic="east.orders")
        queue.handle([GapConfirmed(unmirrored), GapOpened(still_open)], 2.0)
        key = StreamKey("orders", 0, "p", 1)
        queue.handle([DuplicateRecords(key, 4, 4, 1, 10)], 2.0)
        assert table.pending == 0

    def test_duplicates_of_one_stream_in_one_batch_are_one_lookup(self) -> None:
        book, table = OriginBook(aliases=("east",), policy="default"), MirrorTable()
        queue = attributor(book, table, [])
        key = StreamKey("east.orders", 0, "p", 1)
        other = StreamKey("east.orders", 0, "q", 1)
        queue.handle(
            [DuplicateRecords(key, s, s, 1, 100 + s) for s in range(5)]
            + [DuplicateRecords(other, 0, 0, 1, 200)],
            2.0,
        )
        assert table.pending == 2

    def test_the_sweep_queues_fleet_losses_without_an_origin(self) -> None:
        """After a restart the fleet view holds gaps confirmed elsewhere: each gets a lookup."""
        book, table = OriginBook(aliases=("east",), policy="default"), MirrorTable()
        decided = make_gap(1, opened_at=1.0, topic="east.orders", state=GapState.CONFIRMED)
        book.decide(decided.id, Attribution(Origin.SOURCE, Reason.NOT_IN_SOURCE, "x"))
        fleet: list[Gap] = [
            decided,
            make_gap(5, opened_at=1.0, topic="east.orders", state=GapState.RECOVERED),
            make_gap(9, opened_at=1.0, topic="east.orders", state=GapState.HEALED),
        ]
        queue = attributor(book, table, fleet)
        assert queue.sweep() == 1
        assert queue.sweep() == 0  # the fleet view did not change since


class TestFamilies:
    def rows(self) -> tuple[MirrorTable, OriginBook]:
        book, table = OriginBook(aliases=("east",), policy="default"), MirrorTable()
        lost = Attribution(Origin.MIXED, Reason.PARTLY_IN_SOURCE, "x", in_source=2, not_in_source=1)
        table.count_missing("east.orders", 0, "east", lost, 3)
        table.count_duplicates("east.orders", 1, "east", DuplicateSplit(mirror=4, source=1))
        table.set_lag("east.orders", 0, "east", 10, 5.0)
        table.set_lag("east.orders", 1, "east", 7, 9.0)
        return table, book

    @staticmethod
    def by_name(families: list[ScalarFamily]) -> dict[str, dict[tuple[str, ...], float]]:
        return {f.name: dict(f.samples) for f in families}

    def test_per_partition_series_exist_at_zero_for_every_owned_copy(self) -> None:
        table, book = self.rows()
        owned = [("east.orders", 0), ("east.orders", 1), ("east.orders", 2), ("orders", 0)]
        families = self.by_name(
            MirrorCollector(table, book=book, owned=lambda: owned, per_topic=False).read()
        )
        missing = families["gapwatch_mirror_missing_records"]
        assert missing[("east.orders", "0", "east", "mirror")] == 2
        assert missing[("east.orders", "0", "east", "source")] == 1
        assert missing[("east.orders", "2", "east", "unknown")] == 0
        assert not any(labels[0] == "orders" for labels in missing)
        dups = families["gapwatch_mirror_duplicate_records"]
        assert dups[("east.orders", "1", "east", "mirror")] == 4
        assert families["gapwatch_mirror_lag_seconds"] == {
            ("east.orders", "0", "east"): 5.0,
            ("east.orders", "1", "east"): 9.0,
        }

    def test_topic_granularity_sums_counters_and_lag_records_and_takes_the_longest_wait(
        self,
    ) -> None:
        table, book = self.rows()
        families = self.by_name(
            MirrorCollector(table, book=book, owned=lambda: [], per_topic=True).read()
        )
        assert families["gapwatch_mirror_missing_records"][("east.orders", "east", "mirror")] == 2
        assert families["gapwatch_mirror_duplicate_records"][("east.orders", "east", "source")] == 1
        assert families["gapwatch_mirror_lag_records"] == {("east.orders", "east"): 17}
        assert families["gapwatch_mirror_lag_seconds"] == {("east.orders", "east"): 9.0}

    def test_a_revoked_partition_keeps_its_counters_but_loses_its_lag(self) -> None:
        table, book = self.rows()
        table.clear_lag("east.orders", 1, "east")
        families = self.by_name(
            MirrorCollector(table, book=book, owned=lambda: [], per_topic=False).read()
        )
        assert ("east.orders", "1", "east") not in families["gapwatch_mirror_lag_records"]
        assert (
            families["gapwatch_mirror_duplicate_records"][("east.orders", "1", "east", "mirror")]
            == 4
        )
        assert dataclasses.asdict(table.stats("east"))["decided"] == 0

    def test_lookup_counters_exist_at_zero_for_every_source_before_its_first_lookup(
        self,
    ) -> None:
        """rate() and increase() miss the first value of a series born non-zero, so a
        configured source's lookup counters are exported at 0 from the start."""
        table, book = MirrorTable(), OriginBook(aliases=("east",), policy="default")
        table.source_up["east"] = 0
        families = self.by_name(
            MirrorCollector(table, book=book, owned=lambda: [], per_topic=False).read()
        )
        assert families["gapwatch_mirror_lookups"] == {
            ("east", outcome): 0 for outcome in ("decided", "failed", "retried", "dropped")
        }


class TestUnreachableSource:
    async def test_lookups_wait_for_a_source_that_never_connected(self) -> None:
        """Before its source first connects a lookup is neither failed nor dropped: it
        waits (origin pending) and is queued again once the source connects."""
        book, table = OriginBook(aliases=("east",), policy="default"), MirrorTable()
        queue = attributor(book, table, [])
        gap = make_gap(3, opened_at=1.0, topic="east.orders", state=GapState.CONFIRMED)
        queue.start()
        try:
            queue.handle([GapConfirmed(gap)], 2.0)
            for _ in range(50):
                if queue.waiting():
                    break
                await asyncio.sleep(0.02)
            assert queue.waiting() == 1
            assert book.get(gap.id) is None
            assert book.fields_of(gap)["origin"] == "pending"
            assert table.pending == 1
            assert table.stats("east").failed == 0
        finally:
            await queue.stop()
        queue.source_connected("east")
        assert (queue.waiting(), table.pending) == (0, 1)

    async def test_an_unreachable_source_is_retried_and_reported_down(self) -> None:
        """A source nobody listens on: the monitor keeps trying, source_up stays 0."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            dead = f"127.0.0.1:{probe.getsockname()[1]}"
        table = MirrorTable()
        kwargs = {"bootstrap_servers": [dead]}
        pool = ReaderPool(client_kwargs=kwargs, size=1)
        task = asyncio.create_task(keep_connecting("east", pool, client_kwargs=kwargs, table=table))
        await asyncio.sleep(1.5)
        assert not task.done()
        assert table.source_up == {"east": 0}
        assert not pool.is_connected
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
