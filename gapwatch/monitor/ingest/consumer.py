"""The consumer loop: batched fetches into the trackers, facts, checkpoints, rebalances.

The loop and its facts live here; the checkpoint rounds it starts are
:mod:`gapwatch.monitor.state.rounds` and the rebalance callbacks it receives are
handled by :mod:`gapwatch.monitor.state.rebalance`.

One :class:`MonitorConsumer` runs per process, as a group member of ``group_id`` so that N
instances share the partitions. Rules it keeps:

1. **No silent offset reset.** ``auto_offset_reset="none"``; every partition is sought
   explicitly on assignment (checkpoint offset, else committed offset, else
   ``start_from``). An out-of-range fetch below the log start is reported as a
   ``RecordsSkipped`` event (retention deleted unread records) and reading resumes at the
   log start; one above the log end is a truncation (the tracker reports which
   already-read sequences are gone) and reading resumes at the new end.
2. **Confirmation facts.** After every fetch, a partition whose read position has reached
   the high watermark of the latest fetch response is reported to its tracker as
   "caught up to HW, observed at T". A lagging or stalled monitor reports nothing, so it
   cannot confirm gaps whose late records are still unread.
3. **Leader changes** trigger a log check: the records read are compared with the log
   the new leader holds (:mod:`gapwatch.monitor.ingest.logcheck`).
4. **One lock** serialises everything that touches trackers or positions: the loop holds it
   except while waiting in ``getmany``; the rebalance listener and the report reader take
   it. The record path itself never awaits.
5. **Checkpoints** are spread over loop iterations and skip idle partitions; writing and
   committing them never holds the lock (the rules are in
   :mod:`gapwatch.monitor.state.rounds`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import OffsetOutOfRangeError

from gapwatch.core.events import Event
from gapwatch.core.stamps import StampReader
from gapwatch.gaps.fanout import EventFanout
from gapwatch.gaps.store import GapStore
from gapwatch.kafka.aiokafka_consumer import RecordFetcher, fetch_state
from gapwatch.kafka.aiokafka_fetch_sessions import FetchSessions, install_fetch_sessions
from gapwatch.kafka.checkpoints import CheckpointStore
from gapwatch.monitor.config import MonitorConfig
from gapwatch.monitor.health import MonitorHealth
from gapwatch.monitor.ingest.logcheck import LogReader, check_leaders, recover_out_of_range
from gapwatch.monitor.ingest.recordpath import feed_records
from gapwatch.monitor.state.partitions import OwnedPartitions, PartitionState
from gapwatch.monitor.state.rebalance import RebalanceHandler
from gapwatch.monitor.state.rounds import CheckpointRounds

TICK_INTERVAL = 1.0  # seconds between tracker.tick() calls (confirmation is time based)
LEADER_CHECK_INTERVAL = 1.0
# Time one loop step may spend tracking a fetched batch before it lets the rest of the
# process (HTTP, the fetcher) run: the event loop's lag stays a few ms at any batch size.
STEP_BUDGET = 0.002


def subscription_pattern(config: MonitorConfig) -> str:
    """The user's topic pattern, never matching gapwatch's own topics."""
    assert config.watch.topic_pattern is not None
    own = "|".join(re.escape(t) for t in (config.checkpoints.topic, config.reports.topic))
    return f"(?!(?:{own})$)(?:{config.watch.topic_pattern})"


class MonitorConsumer:
    """Reads the watched topics as a group member and feeds every owned partition's tracker."""

    def __init__(
        self,
        *,
        config: MonitorConfig,
        client_kwargs: dict[str, object],
        partitions: OwnedPartitions,
        fanout: EventFanout,
        store: GapStore,
        checkpoints: CheckpointStore,
        health: MonitorHealth,
        lock: asyncio.Lock,
        on_assigned: Sequence[Callable[[PartitionState], None]] = (),
        on_restore_step: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``lock`` is rule 4's (shared with the report reader); ``on_assigned`` are called
        under it, in order, for every partition once it is restored; ``on_restore_step``
        after each step of a restore (:class:`RebalanceHandler`)."""
        self._config = config
        self._kwargs = client_kwargs
        self._partitions = partitions
        self._fanout = fanout
        self._clock = clock
        self.lock = lock
        self._consumer: AIOKafkaConsumer | None = None
        self._fetcher: RecordFetcher | None = None
        self._rounds = CheckpointRounds(
            partitions=partitions, checkpoints=checkpoints, health=health, clock=clock
        )
        self._rebalance = RebalanceHandler(
            config=config,
            lock=self.lock,
            partitions=partitions,
            store=store,
            checkpoints=checkpoints,
            rounds=self._rounds,
            health=health,
            on_assigned=on_assigned,
            on_restore_step=on_restore_step,
        )
        self.last_fetch_at = 0.0
        # Installed at start when configured and possible (None: aiokafka's own fetching).
        self.fetch_sessions: FetchSessions | None = None
        self._stopping = asyncio.Event()
        self._stamps = StampReader()
        self._log_reader = LogReader(
            client_kwargs=client_kwargs, isolation_level=config.kafka.isolation_level
        )

    # --- lifecycle --------------------------------------------------------------------

    @property
    def is_assigned_once(self) -> bool:
        """Whether the group has assigned partitions (possibly none) at least once."""
        return self._rebalance.is_assigned_once

    @property
    def restoring(self) -> set[tuple[str, int]]:
        """The partitions of the assignment being restored now (empty in between)."""
        return self._rebalance.restoring

    async def start(self) -> None:
        """Create the group consumer and subscribe; partitions arrive via the listener."""
        kafka = self._config.kafka
        self._consumer = AIOKafkaConsumer(
            **self._kwargs,
            group_id=self._config.watch.group_id,
            enable_auto_commit=False,
            auto_offset_reset="none",
            isolation_level=kafka.isolation_level,
            max_poll_records=kafka.max_poll_records,
            fetch_max_wait_ms=kafka.fetch_max_wait_ms,
            fetch_min_bytes=kafka.fetch_min_bytes,
            max_partition_fetch_bytes=kafka.max_partition_fetch_bytes,
        )
        await self._consumer.start()
        if kafka.fetch_sessions:
            self.fetch_sessions = install_fetch_sessions(self._consumer)
        self._fetcher = RecordFetcher(self._consumer, direct=kafka.read_batches_directly)
        listener = _Listener(self)
        if self._config.watch.topics:
            self._consumer.subscribe(topics=list(self._config.watch.topics), listener=listener)
        else:
            self._consumer.subscribe(pattern=subscription_pattern(self._config), listener=listener)

    def request_stop(self) -> None:
        """Ask :meth:`run` to finish its current batch and return."""
        self._stopping.set()

    async def stop(self) -> None:
        """Checkpoint and commit every owned partition, then leave the group."""
        if self._consumer is None:
            return
        try:
            await self._rebalance.settle_restore()
            async with self.lock:
                await self._rounds.settle_round()
                await self._rounds.checkpoint(self._consumer, list(self._partitions))
        finally:
            try:
                await self._log_reader.stop()
            finally:
                await self._consumer.stop()

    def is_up(self) -> bool:
        """Whether the loop fetched recently (a wedged loop reports down)."""
        return self.last_fetch_at > 0 and self._clock() - self.last_fetch_at < 30.0

    def fetch_session_resets(self) -> int:
        """How many fetch sessions started over (0 without fetch sessions)."""
        return 0 if self.fetch_sessions is None else self.fetch_sessions.resets

    # --- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        """Fetch, track, report facts and checkpoint until :meth:`request_stop`."""
        consumer, fetcher = self._consumer, self._fetcher
        assert consumer is not None, "start() first"
        assert fetcher is not None, "start() first"
        next_tick = next_checkpoint = next_leader_check = 0.0
        stop_wait = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                try:
                    batches = await fetcher.getmany(timeout_ms=200)
                except OffsetOutOfRangeError as exc:
                    async with self.lock:
                        await self._out_of_range(exc)
                    continue
                now = self._clock()
                self.last_fetch_at = now
                # getmany decoded the records in this loop step already; tracking them
                # is the next one, so HTTP and the fetcher get a turn in between.
                await asyncio.sleep(0)
                async with self.lock:
                    events: list[Event] = []
                    fetched: list[PartitionState] = []
                    step_started = time.perf_counter()
                    for tp, records in batches.items():
                        state = self._partitions.get(tp.topic, tp.partition)
                        if state is not None:
                            self._observe(state, records, now, events)
                            fetched.append(state)
                        if time.perf_counter() - step_started > STEP_BUDGET:
                            # Still under the lock: rebalances and checkpoints wait, and
                            # a state revoked meanwhile cannot be touched.
                            await asyncio.sleep(0)
                            step_started = time.perf_counter()
                    if now >= next_tick:
                        # Every partition's facts once per tick, the fetched ones after
                        # every fetch: walking hundreds of idle partitions per fetch cost
                        # more than reading the records, and confirmation only needs
                        # second-level resolution.
                        next_tick = now + TICK_INTERVAL
                        await self._tick_all(consumer, now, events)
                    else:
                        self._report_facts(consumer, fetched, events)
                    self._fanout.publish(events, now)
                    if now >= next_leader_check:
                        next_leader_check = now + LEADER_CHECK_INTERVAL
                        await self._check_leaders(consumer)
                    due = now >= next_checkpoint and not self.is_checkpointing()
                    if due and await self._rounds.start_round(consumer):
                        next_checkpoint = now + self._config.checkpoints.interval
        finally:
            stop_wait.cancel()

    def _observe(
        self, state: PartitionState, records: Sequence[object], now: float, events: list[Event]
    ) -> None:
        # The hot path, one call per batch (see gapwatch.monitor.ingest.recordpath).
        last = feed_records(
            records,
            tracker=state.tracker,
            stamps=self._stamps,
            latency=state.latency,
            now=now,
            events=events,
        )
        if last is not None:
            state.note_read(last.offset + 1, last.timestamp / 1000.0)

    async def _tick_all(self, consumer: AIOKafkaConsumer, now: float, events: list[Event]) -> None:
        """Every partition's facts, then every tracker's time-driven rules; lock held.

        The loop yields every :data:`STEP_BUDGET` (the lock stays held): at thousands of
        partitions one pass took tens of milliseconds of event-loop time every second.
        """
        states = list(self._partitions)
        step_started = time.perf_counter()
        for state in states:
            self._report_facts(consumer, [state], events)
            if time.perf_counter() - step_started > STEP_BUDGET:
                await asyncio.sleep(0)
                step_started = time.perf_counter()
        for state in states:
            events.extend(state.tracker.tick(now))
            if time.perf_counter() - step_started > STEP_BUDGET:
                await asyncio.sleep(0)
                step_started = time.perf_counter()

    def _report_facts(
        self, consumer: AIOKafkaConsumer, states: list[PartitionState], events: list[Event]
    ) -> None:
        for state in states:
            if not state.is_restored:
                continue
            position, high_watermark, polled_ms = fetch_state(
                consumer, TopicPartition(state.topic, state.partition)
            )
            if position is None or high_watermark is None or polled_ms is None:
                continue
            state.note_fetch_state(position, high_watermark)
            # Also reported while lagging: the tracker remembers (watermark, time) and
            # counts it once the position passes it.
            events.extend(
                state.tracker.note_read_position(
                    read_offset=position,
                    high_watermark=high_watermark,
                    observed_at=polled_ms / 1000.0,
                )
            )

    # --- out of range, truncation, leaders ---------------------------------------------

    async def _out_of_range(self, exc: OffsetOutOfRangeError) -> None:
        assert self._consumer is not None
        now = self._clock()
        events = await recover_out_of_range(
            self._consumer, self._log_reader, self._partitions, exc, now
        )
        self._fanout.publish(events, now)

    async def _check_leaders(self, consumer: AIOKafkaConsumer) -> None:
        events = await check_leaders(consumer, self._log_reader, self._partitions, self._clock)
        self._fanout.publish(events, self._clock())

    # --- checkpoints and rebalances ----------------------------------------------------

    def is_checkpointing(self) -> bool:
        """Whether a periodic checkpoint round (write, then commit) is in flight."""
        return self._rounds.is_in_flight()

    async def revoke(self, revoked: list[TopicPartition]) -> None:
        """Listener: checkpoint and commit what is being taken away, then park it."""
        consumer = self._consumer
        assert consumer is not None
        await self._rebalance.revoke(consumer, revoked)

    async def assign(self, assigned: list[TopicPartition]) -> None:
        """Listener: restore every assigned partition and seek exactly after its checkpoint."""
        consumer = self._consumer
        assert consumer is not None
        await self._rebalance.assign(consumer, assigned)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Routes aiokafka's rebalance callbacks to the consumer (awaited by aiokafka)."""

    def __init__(self, owner: MonitorConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._owner.revoke(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._owner.assign(list(assigned))
