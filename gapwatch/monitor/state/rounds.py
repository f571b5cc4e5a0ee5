"""Checkpoint rounds: snapshot the owned partitions, write their checkpoints, commit offsets.

:class:`CheckpointRounds` is what :class:`~gapwatch.monitor.ingest.consumer.MonitorConsumer` calls
to make checkpoints current (the store itself is :mod:`gapwatch.kafka.checkpoints`).
Rules it keeps:

1. **Periodic checkpoints are spread and skip idle partitions.** A partition whose position
   and counters have not changed since its last checkpoint is not written again (an older
   checkpoint restores the same state); the others are written oldest first, within
   :data:`CHECKPOINT_BUDGET` of snapshot time per loop iteration. Revocation and shutdown
   still checkpoint every owned partition. Finding the changed partitions and taking
   their snapshots happen in a worker thread while the loop holds the lock: no tracker
   changes meanwhile (every writer takes the lock), and the event loop keeps serving HTTP
   instead of stalling for tens of milliseconds per snapshot or for the fingerprints of
   thousands of partitions (the HTTP handlers only read).
2. **Periodic writes and commits never hold the lock.** Only the snapshot is taken under
   it; writing the checkpoints and then committing runs as a background round, at most
   one in flight, each step bounded by :data:`CHECKPOINT_TIMEOUT`; offsets are committed
   :data:`COMMIT_CHUNK` partitions per request, each chunk current once committed. A
   frozen group coordinator or checkpoint-partition leader answers nothing: the round
   fails (counted, logged) while fetching and gap detection go on. Revocation and
   shutdown first wait for the round in flight (bounded), so its commit is made in the
   generation that took its snapshot, and never after the partitions were given away.

Every method here is called with the consumer's lock held; only the background round
(:meth:`CheckpointRounds.start_round`) runs on without it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from gapwatch.core.counters import COUNTER_NAMES
from gapwatch.errors import GapwatchError
from gapwatch.kafka.checkpoints import Checkpoint, CheckpointStore, Pointer, encode_pointer
from gapwatch.monitor.health import MonitorHealth
from gapwatch.monitor.state.partitions import OwnedPartitions, PartitionState

# The consumer's logger: these lines are part of the consumer's work, and the logger name
# is printed in every line, where operators' filters and alerts may select on it.
log = logging.getLogger("gapwatch.monitor.ingest.consumer")

# Bound on each of a checkpoint round's two steps (write, then commit). A frozen broker
# accepts the connection and never answers; the round is then abandoned, counted and
# retried later instead of waiting out the clients' own 30-40 s request timeouts.
CHECKPOINT_TIMEOUT = 10.0
# Snapshot time one loop iteration may spend on periodic checkpoints; partitions left over
# are checkpointed in the next iterations. A snapshot of a full truncation ring costs tens
# of ms, so checkpointing every partition at once stopped reading for the sum of them.
CHECKPOINT_BUDGET = 0.05
# Partitions per offset commit request. aiokafka encodes a request and walks its response
# on the event loop in one go: 5,000 partitions in one commit held the loop for tens of
# milliseconds (66 ms to encode alone on the shared machine); 200 take a millisecond or
# two, and 25 requests in a row are nothing to a background round.
COMMIT_CHUNK = 200


class CheckpointRounds:
    """Writes the owned partitions' checkpoints and commits offsets pointing at them."""

    def __init__(
        self,
        *,
        partitions: OwnedPartitions,
        checkpoints: CheckpointStore,
        health: MonitorHealth,
        clock: Callable[[], float],
    ) -> None:
        self._partitions = partitions
        self._checkpoints = checkpoints
        self._health = health
        self._clock = clock
        self._pointers: dict[tuple[str, int], Pointer] = {}
        self._round: asyncio.Task[None] | None = None

    def committed_pointer(self, key: tuple[str, int]) -> Pointer | None:
        """The checkpoint this instance last committed for partition ``key``, if any."""
        return self._pointers.get(key)

    def is_in_flight(self) -> bool:
        """Whether a periodic checkpoint round (write, then commit) is in flight."""
        return self._round is not None and not self._round.done()

    async def start_round(self, consumer: AIOKafkaConsumer) -> bool:
        """Snapshot changed partitions, oldest first, within the snapshot budget (lock held),
        and write and commit them in a background round that does not hold the lock.

        Returns whether every changed partition is in the round (the interval is over).
        """
        due, snapshots = await asyncio.to_thread(_due_snapshots, list(self._partitions))
        batch = _prepare(due[: len(snapshots)], snapshots, self._clock())
        if batch is not None:
            self._round = asyncio.create_task(
                self._run_round(consumer, batch), name="gapwatch-checkpoint-round"
            )
        return len(snapshots) == len(due)

    async def settle_round(self) -> None:
        """Wait for the round in flight (each of its steps is bounded); never raises."""
        task, self._round = self._round, None
        if task is not None:
            await asyncio.wait({task})

    async def checkpoint(self, consumer: AIOKafkaConsumer, states: list[PartitionState]) -> None:
        """Snapshot, write and commit ``states`` now (lock held; revocation, shutdown)."""
        states = [s for s in states if s.is_restored and s.position is not None]
        snapshots = await asyncio.to_thread(_snapshots, states, None)
        batch = _prepare(states, snapshots, self._clock())
        if batch is not None:
            await self._write_and_commit(consumer, batch)

    async def _run_round(self, consumer: AIOKafkaConsumer, batch: _Batch) -> None:
        try:
            await self._write_and_commit(consumer, batch)
        except Exception:
            # Not expected (Kafka errors and timeouts are handled inside), but a background
            # task's exception would otherwise only surface at garbage collection.
            self._health.checkpoint_failures += 1
            log.exception("checkpoint round failed")

    async def _write_and_commit(self, consumer: AIOKafkaConsumer, batch: _Batch) -> None:
        """Write the checkpoints, then commit offsets pointing at them; failures are counted
        and logged, never raised (the previous checkpoint stays current)."""
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
        keys = list(owned)
        try:
            async with asyncio.timeout(CHECKPOINT_TIMEOUT):
                for start in range(0, len(keys), COMMIT_CHUNK):
                    chunk = keys[start : start + COMMIT_CHUNK]
                    await consumer.commit(
                        {
                            TopicPartition(*key): OffsetAndMetadata(
                                batch.pending[key].offset, encode_pointer(owned[key])
                            )
                            for key in chunk
                        }
                    )
                    # Current as soon as committed: a later chunk's failure leaves these
                    # partitions at their new checkpoint, the others at their previous one.
                    for key in chunk:
                        self._pointers[key] = owned[key]
                        state, mark = batch.marks[key]
                        state.note_checkpointed(mark, batch.taken_at)
        except (KafkaError, TimeoutError):
            # Includes CommitFailedError: the group moved to a newer generation (a frozen
            # coordinator, a rebalance); the next round or the revocation commits again.
            self._health.commit_failures += 1
            log.exception("offset commit failed (the checkpoint stays valid)")


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


def _due_snapshots(states: list[PartitionState]) -> tuple[list[PartitionState], list[bytes]]:
    """The partitions of ``states`` that changed since their last checkpoint, oldest
    first, and the snapshots of the first of them within :data:`CHECKPOINT_BUDGET`.

    Runs in a worker thread while the consumer's lock is held: finding them means a
    fingerprint of every owned partition, milliseconds at thousands of partitions, which
    held the event loop on every round.
    """
    due = [
        s
        for s in states
        if s.is_restored and s.position is not None and s.checkpointed != _fingerprint(s)
    ]
    due.sort(key=lambda s: s.checkpointed_at)
    return due, _snapshots(due, CHECKPOINT_BUDGET)


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
