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
   baseline), else ``start_from``.
"""

from __future__ import annotations

import asyncio
import logging
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
    ) -> None:
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
        self.is_assigned_once = False
        self.restoring: set[tuple[str, int]] = set()

    async def revoke(self, consumer: AIOKafkaConsumer, revoked: list[TopicPartition]) -> None:
        """Checkpoint and commit what is being taken away, then park it."""
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
        """Restore every assigned partition and seek exactly after its checkpoint."""
        async with self._lock:
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
            if pointer is not None
            and not (key in parked and self._rounds.committed_pointer(key) == pointer)
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
            state.mark_restored()
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
            else:
                # PartitionState.restore has the restored ring compared with the log at
                # the first leader check.
                log.info("%s: restored checkpoint, resuming at %d", tp, checkpoint.offset)
            consumer.seek(tp, checkpoint.offset)
            state.seek(checkpoint.offset)
            return
        if key in committed:
            offset = committed[key][0]
            log.warning(
                "%s: no checkpoint; resuming at committed %d with a new baseline", tp, offset
            )
            consumer.seek(tp, offset)
            state.seek(offset)
        else:
            async with asyncio.timeout(ADMIN_TIMEOUT):
                if self._config.watch.start_from == "earliest":
                    offset = (await consumer.beginning_offsets([tp]))[tp]
                else:
                    offset = (await consumer.end_offsets([tp]))[tp]
            consumer.seek(tp, offset)
            state.seek(offset)
