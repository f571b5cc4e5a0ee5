"""Rebalances: checkpoint and park the partitions taken away, restore and seek the assigned.

:class:`RebalanceHandler` does what aiokafka's rebalance callbacks ask of
:class:`~gapwatch.monitor.ingest.consumer.MonitorConsumer`, each under the consumer's lock:

1. **Revocation** first waits for the checkpoint round in flight, which belongs to the
   generation being left, then checkpoints and commits every revoked partition and parks
   its state.
2. **Assignment** restores every assigned partition and seeks it explicitly (rule 1 of
   :mod:`gapwatch.monitor.ingest.consumer`): a parked partition given straight back, whose
   committed checkpoint is still the one this instance wrote, keeps its in-memory state;
   any other starts from its committed checkpoint, else its committed offset (a new
   baseline), else ``start_from``. The restore runs in a task after the callback returns,
   so the group's heartbeats go on; the partitions stay paused until it is over, and the
   next revocation, the next assignment and shutdown wait for it. Committed offsets,
   checkpoints and ``start_from`` offsets are each looked up once for the whole
   assignment, and the restore yields to the event loop every :data:`STEP_BUDGET`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from gapwatch.errors import GapwatchError
from gapwatch.gaps.store import GapStore
from gapwatch.kafka.checkpoints import Checkpoint, CheckpointStore, Pointer
from gapwatch.monitor.config import MonitorConfig
from gapwatch.monitor.health import MonitorHealth
from gapwatch.monitor.state.partitions import OwnedPartitions, PartitionState
from gapwatch.monitor.state.rounds import CheckpointRounds

# The consumer's logger: these lines are part of the consumer's work, and the logger name
# is printed in every line, where operators' filters and alerts may select on it.
log = logging.getLogger("gapwatch.monitor.ingest.consumer")

ADMIN_TIMEOUT = 30.0
# Loop time one step of restoring partitions may take before HTTP and the fetcher get a turn.
STEP_BUDGET = 0.005


class RebalanceHandler:
    """Saves the state of revoked partitions and restores the state of assigned ones."""

    def __init__(
        self,
        *,
        config: MonitorConfig,
        lock: asyncio.Lock,
        partitions: OwnedPartitions,
        store: GapStore,
        checkpoints: CheckpointStore,
        rounds: CheckpointRounds,
        health: MonitorHealth,
        on_assigned: Sequence[Callable[[PartitionState], None]] = (),
        on_restore_step: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_restore_step`` is called after each step of a restore and at its end, with
        the partitions restored so far in place: the process's owner decides what to do
        with the heap they now hold (``gapwatch monitor`` freezes it out of the garbage
        collector's sight, :func:`gapwatch.commands.process_gc.freeze_survivors`)."""
        self._config = config
        self._lock = lock
        self._partitions = partitions
        self._store = store
        self._checkpoints = checkpoints
        self._rounds = rounds
        self._health = health
        self._parked: dict[tuple[str, int], PartitionState] = {}
        # Called under the lock for every partition once it is restored, in this order.
        self._on_assigned = tuple(on_assigned)
        self._on_restore_step = on_restore_step
        self.is_assigned_once = False
        self.restoring: set[tuple[str, int]] = set()
        self._restore_task: asyncio.Task[None] | None = None

    async def revoke(self, consumer: AIOKafkaConsumer, revoked: list[TopicPartition]) -> None:
        """Checkpoint and commit what is being taken away, then park it."""
        # The restore of the previous assignment finishes first: what it restores is what
        # gets checkpointed here.
        await self.settle_restore()
        async with self._lock:
            # The periodic round in flight belongs to the generation being left: let it
            # finish (it does not take the lock) before anything is parked.
            await self._rounds.settle_round()
            states = [
                s
                for tp in revoked
                if (s := self._partitions.get(tp.topic, tp.partition)) is not None
            ]
            await self._rounds.checkpoint(consumer, states)
            for state in states:
                self._partitions.remove(state.topic, state.partition)
                self._parked[(state.topic, state.partition)] = state

    async def assign(self, consumer: AIOKafkaConsumer, assigned: list[TopicPartition]) -> None:
        """Pause every assigned partition and start restoring them (rule 2) in a task of
        its own; :attr:`restoring` names them until it is done."""
        await self.settle_restore()
        async with self._lock:
            keys = [(tp.topic, tp.partition) for tp in assigned]
            self.restoring = set(keys)
            # With auto_offset_reset="none" the fetcher raises NoOffsetForPartition for any
            # partition without a position while the restore awaits (committed offsets,
            # checkpoints). A paused placeholder position keeps it idle until each
            # partition is sought to its real start.
            for tp in assigned:
                consumer.pause(tp)
                consumer.seek(tp, 0)
        # aiokafka sends no heartbeats while this callback runs: restoring thousands of
        # partitions in it outlasted the session timeout, and the group expelled the
        # member, which then restored everything again.
        self._restore_task = asyncio.create_task(
            self._restore(consumer, assigned, keys), name="gapwatch-restore"
        )

    async def settle_restore(self) -> None:
        """Wait until the restore of the latest assignment is over (it never raises)."""
        task, self._restore_task = self._restore_task, None
        if task is not None:
            await asyncio.wait({task})

    async def _restore(
        self,
        consumer: AIOKafkaConsumer,
        assigned: list[TopicPartition],
        keys: list[tuple[str, int]],
    ) -> None:
        started = time.perf_counter()
        try:
            async with self._lock:
                try:
                    starts = await self._restore_all(consumer, assigned, keys)
                finally:
                    consumer.resume(*assigned)
                self.restoring = set()
                self.is_assigned_once = True
                # One line for the assignment: a line per partition was thousands of lines
                # at every start of a large monitor (each one is on DEBUG).
                log.info(
                    "assigned %d partitions in %.1f s (%s)",
                    len(keys),
                    time.perf_counter() - started,
                    ", ".join(f"{count} {how}" for how, count in sorted(starts.items())),
                )
        except Exception:
            # As when the restore ran inside aiokafka's callback, which logs what the
            # listener raised: the partitions stay in restoring, so /readyz says so.
            log.exception("restoring %d assigned partitions failed", len(keys))

    async def _restore_all(
        self,
        consumer: AIOKafkaConsumer,
        assigned: list[TopicPartition],
        keys: list[tuple[str, int]],
    ) -> Counter[str]:
        """Restore every assigned partition; how many started in each way."""
        parked, self._parked = self._parked, {}
        for key in parked:
            if key not in self.restoring:
                self._store.forget_open(*key)
        committed = await self._checkpoints.committed(keys) if keys else {}
        wanted = {
            key: pointer
            for key, (_, pointer) in committed.items()
            if pointer is not None
            and not (key in parked and self._rounds.committed_pointer(key) == pointer)
        }
        loaded = await self._checkpoints.load(wanted)
        # Revoked from and given back to this instance in the same rebalance: nobody else
        # read them, so the in-memory state is the checkpoint.
        kept = {
            key: held
            for key in keys
            if key not in wanted
            and (held := parked.get(key)) is not None
            and held.position is not None
        }
        unstarted = [
            tp
            for tp, key in zip(assigned, keys, strict=True)
            if key not in kept and key not in loaded and key not in committed
        ]
        starts = await self._start_offsets(consumer, unstarted)
        how_started: Counter[str] = Counter()
        # Where each partition resumes, sought only once all are restored: every seek
        # wakes aiokafka's fetcher, which at the next yield walks every assigned partition
        # and waits again on each paused one; seeking as the restore went, those walks
        # were the largest cost of restoring 5,000 partitions (a cProfile of bench_scale).
        positions: dict[TopicPartition, int] = {}
        step_started = time.perf_counter()
        try:
            for tp, key in zip(assigned, keys, strict=True):
                held = kept.get(key)
                if held is not None and held.position is not None:
                    state = held
                    self._partitions.adopt(state)
                    positions[tp] = held.position
                    how_started["kept in memory"] += 1
                else:
                    state = self._partitions.add(*key)
                    self._store.forget_open(*key)
                    how, positions[tp] = self._start_partition(
                        tp, state, loaded.get(key), committed, starts
                    )
                    state.seek(positions[tp])
                    how_started[how] += 1
                state.mark_restored()
                self._store.load(state.tracker.gaps())
                for callback in self._on_assigned:
                    callback(state)
                if time.perf_counter() - step_started > STEP_BUDGET:
                    self._on_restore_step()
                    # Thousands of restores in one go held the loop for seconds; the lock
                    # stays held, so the consumer loop and checkpoints still wait for all.
                    await asyncio.sleep(0)
                    step_started = time.perf_counter()
        finally:
            for tp, position in positions.items():
                consumer.seek(tp, position)
        self._on_restore_step()
        return how_started

    async def _start_offsets(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Where ``start_from`` begins each of ``tps``: one ListOffsets lookup for all of
        them, where one per partition took minutes for a group of thousands."""
        if not tps:
            return {}
        async with asyncio.timeout(ADMIN_TIMEOUT):
            if self._config.watch.start_from == "earliest":
                offsets: dict[TopicPartition, int] = await consumer.beginning_offsets(tps)
            else:
                offsets = await consumer.end_offsets(tps)
        return offsets

    def _start_partition(
        self,
        tp: TopicPartition,
        state: PartitionState,
        checkpoint: Checkpoint | None,
        committed: dict[tuple[str, int], tuple[int, Pointer | None]],
        starts: dict[TopicPartition, int],
    ) -> tuple[str, int]:
        """Set up a newly owned partition's tracker; returns how it started and where it
        resumes reading."""
        key = (tp.topic, tp.partition)
        if checkpoint is not None:
            try:
                state.restore(checkpoint.snapshot, self._config.tracker.to_tracker_config())
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
                how = "at the offset of an unusable checkpoint"
            else:
                # PartitionState.restore has the restored ring compared with the log at
                # the first leader check.
                log.debug("%s: restored checkpoint, resuming at %d", tp, checkpoint.offset)
                how = "from checkpoints"
            return how, checkpoint.offset
        if key in committed:
            offset = committed[key][0]
            log.warning(
                "%s: no checkpoint; resuming at committed %d with a new baseline", tp, offset
            )
            how = "at committed offsets"
        else:
            offset = starts[tp]
            how = f"at start_from={self._config.watch.start_from}"
        return how, offset
