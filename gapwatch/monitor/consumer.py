"""The consumer loop: batched fetches into the trackers, facts, checkpoints, rebalances.

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
   the new leader holds (:mod:`gapwatch.monitor.logverify`).
4. **One lock** serialises everything that touches trackers or positions: the loop holds it
   except while waiting in ``getmany``; the rebalance listener and the report reader take
   it. The record path itself never awaits.
5. **Periodic checkpoints are spread and skip idle partitions.** A partition whose position
   and counters have not changed since its last checkpoint is not written again (an older
   checkpoint restores the same state); the others are written oldest first, within
   :data:`CHECKPOINT_BUDGET` of snapshot time per loop iteration. Revocation and shutdown
   still checkpoint every owned partition. Snapshots are taken in a worker thread while
   the loop holds the lock: no tracker changes meanwhile (every writer takes the lock),
   and the event loop keeps serving HTTP instead of stalling for tens of milliseconds
   per snapshot (the HTTP handlers only read).
6. **Periodic writes and commits never hold the lock.** Only the snapshot is taken under
   it; writing the checkpoints and then committing runs as a background round, at most
   one in flight, each step bounded by :data:`CHECKPOINT_TIMEOUT`. A frozen group
   coordinator or checkpoint-partition leader answers nothing: the round fails (counted,
   logged) while fetching and gap detection go on. Revocation and shutdown first wait for
   the round in flight (bounded), so its commit is made in the generation that took its
   snapshot, and never after the partitions were given away.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, OffsetOutOfRangeError
from aiokafka.structs import OffsetAndMetadata

from gapwatch.core.counters import COUNTER_NAMES
from gapwatch.core.model import Event
from gapwatch.errors import GapwatchError
from gapwatch.monitor.checkpoint_codec import Checkpoint, Pointer, encode_pointer
from gapwatch.monitor.checkpoints import CheckpointStore
from gapwatch.monitor.config import MonitorConfig
from gapwatch.monitor.fanout import EventFanout
from gapwatch.monitor.gapstore import GapStore
from gapwatch.monitor.logchanges import check_leaders, recover_out_of_range
from gapwatch.monitor.logverify import LogReader
from gapwatch.monitor.metrics import MonitorHealth
from gapwatch.monitor.partitions import OwnedPartitions, PartitionState
from gapwatch.monitor.recordpath import feed_records
from gapwatch.monitor.stamps import StampReader
from gapwatch.monitor.tracking import restore_tracker

log = logging.getLogger(__name__)

TICK_INTERVAL = 1.0  # seconds between tracker.tick() calls (confirmation is time based)
LEADER_CHECK_INTERVAL = 1.0
ADMIN_TIMEOUT = 30.0
# Bound on each of a checkpoint round's two steps (write, then commit). A frozen broker
# accepts the connection and never answers; the round is then abandoned, counted and
# retried later instead of waiting out the clients' own 30-40 s request timeouts.
CHECKPOINT_TIMEOUT = 10.0
# Snapshot time one loop iteration may spend on periodic checkpoints; partitions left over
# are checkpointed in the next iterations. A snapshot of a full truncation ring costs tens
# of ms, so checkpointing every partition at once stopped reading for the sum of them.
CHECKPOINT_BUDGET = 0.05
# Time one loop step may spend tracking a fetched batch before it lets the rest of the
# process (HTTP, the fetcher) run: the event loop's lag stays a few ms at any batch size.
STEP_BUDGET = 0.002


def subscription_pattern(config: MonitorConfig) -> str:
    """The user's topic pattern, never matching gapwatch's own topics."""
    assert config.watch.topic_pattern is not None
    own = "|".join(re.escape(t) for t in (config.checkpoints.topic, config.reports.topic))
    return f"(?!(?:{own})$)(?:{config.watch.topic_pattern})"


def fetch_state(
    consumer: AIOKafkaConsumer, tp: TopicPartition
) -> tuple[int | None, int | None, int | None]:
    """(position, high watermark, when it was fetched in ms) of ``tp``, without waiting.

    aiokafka's public ``position()`` awaits when the position is not known yet and can wait
    through a rebalance, which would deadlock with the listener on the loop's lock; its
    ``highwater()`` asserts assignment. So this reads the subscription state directly. The
    consumer's position also steps over transaction markers, which "last record + 1" would
    not: without it a transactional partition would never look caught up.
    """
    subscription = consumer._subscription.subscription
    assignment = None if subscription is None else subscription.assignment
    tp_state = None if assignment is None else assignment.state_value(tp)
    if tp_state is None:
        return None, None, None
    position = tp_state.position if tp_state.has_valid_position else None
    return position, tp_state.highwater, tp_state.timestamp


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._kwargs = client_kwargs
        self._partitions = partitions
        self._fanout = fanout
        self._store = store
        self._checkpoints = checkpoints
        self._health = health
        self._clock = clock
        self.lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._pointers: dict[tuple[str, int], Pointer] = {}
        self._parked: dict[tuple[str, int], PartitionState] = {}
        self._on_assigned: list[Callable[[PartitionState], None]] = []
        self.is_assigned_once = False
        self.restoring: set[tuple[str, int]] = set()
        self.last_fetch_at = 0.0
        self._stopping = asyncio.Event()
        self._round: asyncio.Task[None] | None = None
        self._stamps = StampReader()
        self._log_reader = LogReader(
            client_kwargs=client_kwargs, isolation_level=config.kafka.isolation_level
        )

    # --- lifecycle --------------------------------------------------------------------

    def on_assigned(self, callback: Callable[[PartitionState], None]) -> None:
        """Call ``callback`` (under the lock) for every partition once it is restored."""
        self._on_assigned.append(callback)

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
            async with self.lock:
                await self._settle_round()
                await self._checkpoint(list(self._partitions))
        finally:
            try:
                await self._log_reader.stop()
            finally:
                await self._consumer.stop()

    def is_up(self) -> bool:
        """Whether the loop fetched recently (a wedged loop reports down)."""
        return self.last_fetch_at > 0 and self._clock() - self.last_fetch_at < 30.0

    # --- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        """Fetch, track, report facts and checkpoint until :meth:`request_stop`."""
        consumer = self._consumer
        assert consumer is not None, "start() first"
        next_tick = next_checkpoint = next_leader_check = 0.0
        stop_wait = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                try:
                    batches = await consumer.getmany(timeout_ms=200)
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
                        self._report_facts(consumer, list(self._partitions), events)
                        for state in self._partitions:
                            events.extend(state.tracker.tick(now))
                    else:
                        self._report_facts(consumer, fetched, events)
                    self._fanout.publish(events, now)
                    if now >= next_leader_check:
                        next_leader_check = now + LEADER_CHECK_INTERVAL
                        await self._check_leaders(consumer)
                    due = now >= next_checkpoint and not self.is_checkpointing()
                    if due and await self._start_round():
                        next_checkpoint = now + self._config.checkpoints.interval
        finally:
            stop_wait.cancel()

    def _observe(
        self, state: PartitionState, records: Sequence[object], now: float, events: list[Event]
    ) -> None:
        # The hot path, one call per batch (see gapwatch.monitor.recordpath).
        last = feed_records(
            records,
            tracker=state.tracker,
            stamps=self._stamps,
            latency=state.latency,
            now=now,
            events=events,
        )
        if last is not None:
            state.position = last.offset + 1
            state.last_record_ts = last.timestamp / 1000.0

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
            state.position = position
            state.high_watermark = high_watermark
            # Also reported while lagging: the tracker remembers (watermark, time) and
            # counts it once the position passes it.
            events.extend(
                state.tracker.caught_up(
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
        return self._round is not None and not self._round.done()

    async def _start_round(self) -> bool:
        """Snapshot changed partitions, oldest first, within the snapshot budget (lock held),
        and write and commit them in a background round that does not hold the lock.

        Returns whether every changed partition is in the round (the interval is over).
        """
        due = [
            s
            for s in self._partitions
            if s.is_restored and s.position is not None and s.checkpointed != _fingerprint(s)
        ]
        due.sort(key=lambda s: s.checkpointed_at)
        snapshots = await asyncio.to_thread(_snapshots, due, CHECKPOINT_BUDGET)
        batch = _prepare(due[: len(snapshots)], snapshots, self._clock())
        if batch is not None:
            self._round = asyncio.create_task(
                self._run_round(batch), name="gapwatch-checkpoint-round"
            )
        return len(snapshots) == len(due)

    async def _settle_round(self) -> None:
        """Wait for the round in flight (each of its steps is bounded); never raises."""
        task, self._round = self._round, None
        if task is not None:
            await asyncio.wait({task})

    async def _run_round(self, batch: _Batch) -> None:
        try:
            await self._write_and_commit(batch)
        except Exception:
            # Not expected (Kafka errors and timeouts are handled inside), but a background
            # task's exception would otherwise only surface at garbage collection.
            self._health.checkpoint_failures += 1
            log.exception("checkpoint round failed")

    async def _checkpoint(self, states: list[PartitionState]) -> None:
        """Snapshot, write and commit ``states`` now (lock held; revocation, shutdown)."""
        states = [s for s in states if s.is_restored and s.position is not None]
        snapshots = await asyncio.to_thread(_snapshots, states, None)
        batch = _prepare(states, snapshots, self._clock())
        if batch is not None:
            await self._write_and_commit(batch)

    async def _write_and_commit(self, batch: _Batch) -> None:
        """Write the checkpoints, then commit offsets pointing at them; failures are counted
        and logged, never raised (the previous checkpoint stays current)."""
        consumer = self._consumer
        assert consumer is not None
        try:
            async with asyncio.timeout(CHECKPOINT_TIMEOUT):
                pointers = await self._checkpoints.write(batch.pending)
        except (KafkaError, TimeoutError, GapwatchError):
            self._health.checkpoint_failures += 1
            log.exception("checkpoint write failed; offsets not committed")
            return
        self._health.checkpoints += len(pointers)
        # Left out by the store because they are too large: not committed, so those
        # partitions restart from their previous checkpoint (counted, logged there).
        self._health.checkpoints_too_large += len(batch.pending) - len(pointers)
        # Only partitions still owned by the state that was snapshotted. Revocation waits
        # for the round, so this is a guard, not a path: a commit for a partition given
        # away would move another member's offset.
        owned = {
            key: pointer
            for key, pointer in pointers.items()
            if self._partitions.get(*key) is batch.marks[key][0]
        }
        if not owned:
            return
        offsets = {
            TopicPartition(topic, partition): OffsetAndMetadata(
                batch.pending[(topic, partition)].offset, encode_pointer(pointer)
            )
            for (topic, partition), pointer in owned.items()
        }
        try:
            async with asyncio.timeout(CHECKPOINT_TIMEOUT):
                await consumer.commit(offsets)
        except (KafkaError, TimeoutError):
            # Includes CommitFailedError: the group moved to a newer generation (a frozen
            # coordinator, a rebalance); the next round or the revocation commits again.
            self._health.commit_failures += 1
            log.exception("offset commit failed (the checkpoint stays valid)")
            return
        self._pointers.update(owned)
        for key in owned:
            state, mark = batch.marks[key]
            state.checkpointed = mark
            state.checkpointed_at = batch.taken_at

    async def revoke(self, revoked: list[TopicPartition]) -> None:
        """Listener: checkpoint and commit what is being taken away, then park it."""
        async with self.lock:
            # The periodic round in flight belongs to the generation being left: let it
            # finish (it does not take the lock) before anything is parked.
            await self._settle_round()
            states = [
                s
                for tp in revoked
                if (s := self._partitions.get(tp.topic, tp.partition)) is not None
            ]
            await self._checkpoint(states)
            for state in states:
                self._partitions.remove(state.topic, state.partition)
                self._parked[(state.topic, state.partition)] = state

    async def assign(self, assigned: list[TopicPartition]) -> None:
        """Listener: restore every assigned partition and seek exactly after its checkpoint."""
        consumer = self._consumer
        assert consumer is not None
        async with self.lock:
            keys = [(tp.topic, tp.partition) for tp in assigned]
            self.restoring = set(keys)
            # With auto_offset_reset="none" the fetcher raises NoOffsetForPartition for any
            # partition without a position while this handler awaits (committed offsets,
            # checkpoints). A paused placeholder position keeps it idle until each
            # partition is sought to its real start below.
            for tp in assigned:
                consumer.pause(tp)
                consumer.seek(tp, 0)
            try:
                await self._restore_all(consumer, assigned, keys)
            finally:
                consumer.resume(*assigned)
            self.restoring = set()
            self.is_assigned_once = True
            log.info("assigned %d partitions", len(keys))

    async def _restore_all(
        self,
        consumer: AIOKafkaConsumer,
        assigned: list[TopicPartition],
        keys: list[tuple[str, int]],
    ) -> None:
        parked, self._parked = self._parked, {}
        for key in parked:
            if key not in self.restoring:
                self._store.forget_open(*key)
        committed = await self._checkpoints.committed(keys) if keys else {}
        wanted = {
            key: pointer
            for key, (_, pointer) in committed.items()
            if pointer is not None and not (key in parked and self._pointers.get(key) == pointer)
        }
        loaded = await self._checkpoints.load(wanted)
        for tp, key in zip(assigned, keys, strict=True):
            kept = parked.get(key) if key not in wanted else None
            if kept is not None and kept.position is not None:
                state = kept
                # Revoked from and given back to this instance in the same rebalance:
                # nobody else read it, so the in-memory state is the checkpoint.
                self._partitions.adopt(state)
                consumer.seek(tp, kept.position)
            else:
                state = self._partitions.add(*key)
                self._store.forget_open(*key)
                await self._start_partition(consumer, tp, state, loaded.get(key), committed)
            state.is_restored = True
            self._store.load(state.tracker.gaps())
            for callback in self._on_assigned:
                callback(state)

    async def _start_partition(
        self,
        consumer: AIOKafkaConsumer,
        tp: TopicPartition,
        state: PartitionState,
        checkpoint: Checkpoint | None,
        committed: dict[tuple[str, int], tuple[int, Pointer | None]],
    ) -> None:
        key = (tp.topic, tp.partition)
        if checkpoint is not None:
            try:
                state.tracker = restore_tracker(
                    tp.topic,
                    tp.partition,
                    self._config.tracker.to_tracker_config(),
                    checkpoint.snapshot,
                )
            except GapwatchError as exc:
                # E.g. a snapshot format this version does not read (a downgrade) or
                # damaged bytes: keep the checkpoint's offset, so nothing is read twice or
                # skipped, and let first sight (R2) make every stream a new baseline.
                self._health.checkpoint_restore_failures += 1
                log.warning(
                    "%s: checkpoint unusable (%s); resuming at its offset %d with a fresh "
                    "tracker (new baselines, gaps open before it are not carried over)",
                    tp,
                    exc,
                    checkpoint.offset,
                )
            else:
                log.info("%s: restored checkpoint, resuming at %d", tp, checkpoint.offset)
                # An unclean election while no monitor ran is no leader change we saw:
                # compare the restored ring with the log at the first leader check.
                state.needs_verify = True
            consumer.seek(tp, checkpoint.offset)
            state.position = checkpoint.offset
            return
        if key in committed:
            offset = committed[key][0]
            log.warning(
                "%s: no checkpoint; resuming at committed %d with a new baseline", tp, offset
            )
            consumer.seek(tp, offset)
            state.position = offset
        else:
            async with asyncio.timeout(ADMIN_TIMEOUT):
                if self._config.watch.start_from == "earliest":
                    offset = (await consumer.beginning_offsets([tp]))[tp]
                else:
                    offset = (await consumer.end_offsets([tp]))[tp]
            consumer.seek(tp, offset)
            state.position = offset


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Routes aiokafka's rebalance callbacks to the consumer (awaited by aiokafka)."""

    def __init__(self, owner: MonitorConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._owner.revoke(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._owner.assign(list(assigned))


@dataclass(frozen=True, slots=True)
class _Batch:
    """The checkpoints of one round, taken under the lock, written and committed after."""

    pending: dict[tuple[str, int], Checkpoint]
    marks: dict[tuple[str, int], tuple[PartitionState, tuple[int, ...]]]
    taken_at: float


def _prepare(states: list[PartitionState], snapshots: list[bytes], now: float) -> _Batch | None:
    """The checkpoints of ``states`` (lock held: positions and counters are current)."""
    pending: dict[tuple[str, int], Checkpoint] = {}
    marks: dict[tuple[str, int], tuple[PartitionState, tuple[int, ...]]] = {}
    for state, snapshot in zip(states, snapshots, strict=True):
        assert state.position is not None
        key = (state.topic, state.partition)
        marks[key] = (state, _fingerprint(state))
        pending[key] = Checkpoint(state.position, now, snapshot)
    return _Batch(pending, marks, now) if pending else None


def _fingerprint(state: PartitionState) -> tuple[int, ...]:
    """What must change for a partition to need a new checkpoint: position and counters.

    Tracker state that moves without them (watermarks seen, reports queued) is derived
    again after a restore from the previous checkpoint, so skipping it loses nothing.
    """
    counters = state.tracker.counters
    return (state.position or 0, *(getattr(counters, name) for name in COUNTER_NAMES))


def _snapshots(states: list[PartitionState], budget: float | None) -> list[bytes]:
    """Snapshots of ``states`` in order, stopping once ``budget`` seconds are spent (at
    least one). Runs in a worker thread while the consumer's lock is held."""
    started = time.perf_counter()
    snapshots: list[bytes] = []
    for state in states:
        snapshots.append(state.tracker.snapshot())
        if budget is not None and time.perf_counter() - started >= budget:
            break
    return snapshots
