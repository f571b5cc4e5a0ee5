"""Per-partition lanes of a StampedProducer: the FIFO turn and the pending outcomes.

**The turn.** aiokafka's ``send()`` may await (metadata, a full batch), and tasks that
await are not resumed in the order they started waiting, so two records could reach the
partition's batch in the opposite order of their sequences. A lane's turn is held from
assigning a sequence until the record is in aiokafka's batch; senders that find it taken
queue up, and releasing hands it straight to the oldest live waiter so that a newcomer
cannot overtake. Uncontended, taking the turn is a flag test: no await, no allocation.

**Pending outcomes.** Instead of a done-callback per record (a loop callback and a
handle each: measurably the largest cost of stamping), each lane keeps its in-flight
delivery futures in sequence order and books the ones that completed in a sweep: on the
next send to the lane, periodically, and before every report, flush and stop. Batches
of one partition complete in order, so a sweep only ever looks at the front.

**The table.** :class:`LaneTable` holds a producer's lanes, made on first use, and sweeps
them all at once (:func:`sweep_periodically` does so on a timer).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from aiokafka.structs import TopicPartition

from gapwatch.producer.bookkeeping import DeliveryBook, StreamBook

# (first sequence, number of records, delivery future): 1 record per send, n per batch.
Pending = tuple[int, int, "asyncio.Future[Any]"]


class Lane:
    """One (topic, partition) of one producer: its bookkeeping, turn and pending sends."""

    __slots__ = ("_busy", "_ledger", "_pending", "_waiters", "book", "tp")

    def __init__(self, ledger: DeliveryBook, book: StreamBook) -> None:
        self._ledger = ledger
        self.book = book
        self.tp = TopicPartition(book.topic, book.partition)
        self._busy = False
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._pending: deque[Pending] = deque()

    # --- the turn ----------------------------------------------------------------------

    def take_turn(self) -> bool:
        """Take the turn if it is free; False if the caller must ``await wait_turn()``."""
        if self._busy:
            return False
        self._busy = True
        return True

    async def wait_turn(self) -> None:
        """Wait until the turn is handed to the caller (after :meth:`take_turn` said no)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # The turn was handed over just as we were cancelled: pass it on.
                self.release_turn()
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def release_turn(self) -> None:
        """Hand the turn to the oldest live waiter, or free it."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # _busy stays True: the waiter owns the turn now
                return
        self._busy = False

    # --- pending outcomes --------------------------------------------------------------

    def await_outcome(self, first: int, count: int, future: asyncio.Future[Any]) -> None:
        """Book the outcome of sequences ``first`` .. ``first + count - 1`` once ``future``
        completes (call in the order the sequences were assigned).

        Sends that completed meanwhile are booked at once if the oldest one did.
        """
        pending = self._pending
        pending.append((first, count, future))
        if pending[0][2].done():
            self.sweep()

    def has_pending(self) -> bool:
        """Whether some send of this lane has an outcome not yet booked."""
        return bool(self._pending)

    def sweep(self) -> None:
        """Book the outcomes of the lane's completed sends, from the front."""
        pending = self._pending
        ledger = self._ledger
        book = self.book
        acked = 0
        highest = -1
        while pending:
            first, count, future = pending[0]
            if not future.done():
                break
            pending.popleft()
            last = first + count - 1
            if future.cancelled():
                # The application cancelled the delivery future: the outcome is unknowable.
                ledger.unobserved(book, last, count)
                continue
            exc = future.exception()  # also marks it retrieved: it is booked, not ignored
            if exc is not None:
                ledger.failed(book, first, exc, last=None if count == 1 else last)
            elif future.result() is None:
                ledger.sent_unacknowledged(book, last, count)  # acks=0
            else:
                acked += count
                highest = max(highest, last)
        if acked:
            ledger.acknowledged(book, highest, acked)


class LaneTable:
    """Every lane of one producer, keyed by (topic, partition), made on first use."""

    __slots__ = ("_lanes", "_ledger")

    def __init__(self, ledger: DeliveryBook) -> None:
        self._ledger = ledger
        self._lanes: dict[tuple[str, int], Lane] = {}

    def lane(self, topic: str, partition: int) -> Lane:
        """The lane of (topic, partition), made if it is the first record there."""
        lane = self._lanes.get((topic, partition))
        if lane is None:
            lane = self._lanes[(topic, partition)] = Lane(
                self._ledger, self._ledger.stream(topic, partition)
            )
        return lane

    def sweep_all(self) -> None:
        """Book every completed send (before reports, flush and stop)."""
        for lane in self._lanes.values():
            if lane.has_pending():
                lane.sweep()


async def sweep_periodically(table: LaneTable, interval_s: float) -> None:
    """Sweep every lane each ``interval_s`` seconds, until cancelled."""
    # Keeps metrics current for partitions that stopped receiving sends.
    while True:
        await asyncio.sleep(interval_s)
        table.sweep_all()
