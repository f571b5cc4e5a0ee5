"""THE composition root of the consumer-side verifier: :class:`ConsumerVerifier`.

It wires the pure ledger (:mod:`.ledger`), the checkpoint store (:mod:`.store`), the
event fan-out shared with the monitor (sinks subscribe there), the metrics collector
(:mod:`.metrics`) and one background task, around an application's aiokafka consumer.

When state is written, and why (``docs/verifier.md`` has the full model):

1. A mark (:meth:`ConsumerVerifier.processed`) changes memory only. It becomes durable
   when a checkpoint is written: on :meth:`~ConsumerVerifier.flush`, every
   ``checkpoint_interval`` seconds in the background, when partitions are revoked, and
   on :meth:`~ConsumerVerifier.stop`. A checkpoint snapshots every changed partition at
   one instant (no await in between) and writes them with ``acks=all``; writes never
   overlap, so the newest record of a key is the newest state.
2. Checkpoints are *independent of the application's offset commits*: they are neither
   triggered by commits nor found through them, because a commit says what was handed
   out, not what was processed. After a crash the restored state holds exactly the
   flushed marks, and the application's resume point decides what it sees next: skipped
   records (committed, never processed) open a gap; records handed out again and
   processed again are duplicates.
3. The order that makes both exact is "process, mark, flush, then commit": a mark that
   is not flushed when the process dies is forgotten, so a commit that got ahead of it
   turns it into a false gap, and re-processing it is not counted. With auto-commit the
   application cannot order commits, so flush after each batch to keep that window to
   the batch in hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from prometheus_client import REGISTRY, CollectorRegistry

from gapwatch.core.events import Event, GapConfirmed
from gapwatch.core.intake import Headers
from gapwatch.core.model import Gap
from gapwatch.errors import GapwatchError
from gapwatch.gaps.fanout import EventFanout, EventSubscriber
from gapwatch.kafka.checkpoints import Checkpoint, PartitionKey
from gapwatch.kafka.settings import client_kwargs
from gapwatch.verifier.config import VerifierConfig
from gapwatch.verifier.ledger import ProcessedLedger, ProcessedRecord, VerifiedPartition
from gapwatch.verifier.metrics import VerifierCollector, VerifierHealth
from gapwatch.verifier.rebalance import VerifierListener
from gapwatch.verifier.store import VerifierCheckpoints

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# How long the background round waits for one partition's position (aiokafka's
# position() waits while the consumer is still looking up where to start).
_POSITION_TIMEOUT = 1.0


class VerifierError(GapwatchError):
    """The verifier could not do what was asked (not started, checkpoint not written)."""


_Mark = tuple[int, int, Headers, float]  # offset, timestamp_ms, headers, marked at


class ConsumerVerifier:
    """Checks that an application processes every record exactly once, across crashes.

    ::

        verifier = ConsumerVerifier(consumer, VerifierConfig(group_id="billing",
                                                             bootstrap_servers="kafka:9092"))
        consumer.subscribe(["orders"], listener=verifier.listener())
        await consumer.start(); await verifier.start()
        batch = await consumer.getmany(timeout_ms=1000)
        for records in batch.values():
            for record in records:
                with verifier.processing(record):   # marked only if the block succeeds
                    handle(record)
        await verifier.flush()                      # durable: survives SIGKILL
        await consumer.commit()

    ``subscribers`` receive every tracker event (the monitor's sinks work as they are;
    the verifier does not start or stop them). ``registry=None`` exports no metrics.
    The verifier's own clients connect with ``config.security``; ``client_options`` are
    extra aiokafka arguments for them, applied last. ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        config: VerifierConfig,
        *,
        subscribers: Sequence[EventSubscriber] = (),
        registry: CollectorRegistry | None = REGISTRY,
        client_options: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._consumer = consumer
        self._clock = clock
        self.ledger = ProcessedLedger(config.tracker)
        self.health = VerifierHealth()
        self.fanout = EventFanout()
        for subscriber in subscribers:
            self.fanout.subscribe(subscriber)
        kwargs: dict[str, Any] = {
            **client_kwargs(config.kafka_settings()),
            **(client_options or {}),
        }
        self._store = VerifierCheckpoints(
            client_kwargs=kwargs,
            topic=config.checkpoint_topic,
            group_id=config.group_id,
            timeout=config.timeout,
        )
        self._registry = registry
        self.collector = VerifierCollector(config.group_id, self.ledger, self.health)
        self._pending: dict[PartitionKey, list[_Mark]] = {}
        self._restoring: dict[PartitionKey, asyncio.Task[None]] = {}
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Event()

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Create the checkpoint topic if needed, connect, start the background task."""
        await self._store.start()
        if self._registry is not None:
            self._registry.register(self.collector)
        self._task = asyncio.create_task(self._run(), name="gapwatch-verifier")
        self._started.set()

    async def stop(self) -> None:
        """Checkpoint every held partition, then close (does not stop the consumer)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=self.config.timeout)
            self._task = None
        try:
            await self.flush()
        except Exception:
            log.exception("final verifier checkpoint failed; marks since the last one are lost")
        finally:
            await self._store.stop()
            if self._registry is not None and self._started.is_set():
                self._registry.unregister(self.collector)
            self._started.clear()

    async def __aenter__(self) -> ConsumerVerifier:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def listener(self, inner: ConsumerRebalanceListener | None = None) -> ConsumerRebalanceListener:
        """A rebalance listener for ``consumer.subscribe(..., listener=...)``.

        It restores assigned partitions before the application is handed their records,
        and checkpoints revoked ones after ``inner`` (the application's own listener, if
        any) has run, so marks made while finishing a batch on revocation are included.
        Without it, a partition is restored when its first record is marked.
        """
        return VerifierListener(self, inner)

    # --- marking ---------------------------------------------------------------------

    def processed(self, record: ProcessedRecord) -> None:
        """Mark ``record`` processed (in memory; durable after the next checkpoint)."""
        key = (record.topic, record.partition)
        now = self._clock()
        part = self.ledger.get(*key)
        if part is None:
            self._pending.setdefault(key, []).append(
                (record.offset, record.timestamp, record.headers, now)
            )
            self._ensure_restoring([key])
            return
        self._publish(
            self.ledger.processed(
                part,
                offset=record.offset,
                timestamp_ms=record.timestamp,
                headers=record.headers,
                now=now,
            ),
            now,
        )

    @contextlib.contextmanager
    def processing(self, record: ProcessedRecord) -> Iterator[None]:
        """Marks ``record`` processed when the block ends without an exception."""
        yield
        self.processed(record)

    def handler(self, func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        """Decorate ``async def handle(record, ...)``: the record is marked if it returns."""

        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            result = await func(*args, **kwargs)
            record = args[0]
            self.processed(record)  # type: ignore[arg-type]
            return result

        return wrapper

    async def flush(self) -> None:
        """Make every mark made so far durable; raises :class:`VerifierError` if not written."""
        if not self._started.is_set():
            raise VerifierError("start() the verifier first")
        await self._await_restoring()
        try:
            await self._checkpoint()
        except Exception as exc:
            raise VerifierError(f"checkpoint not written: {exc!r}") from exc

    # --- reading ---------------------------------------------------------------------

    def gaps(self) -> list[Gap]:
        """Gaps in processing that the held partitions' trackers know."""
        return self.ledger.gaps()

    def partitions(self) -> list[VerifiedPartition]:
        """The partitions this verifier holds now."""
        return list(self.ledger)

    # --- rebalances and restore ------------------------------------------------------

    def _ensure_restoring(self, keys: Iterable[PartitionKey]) -> list[asyncio.Task[None]]:
        keys = list(keys)
        missing = [k for k in keys if k not in self._restoring and self.ledger.get(*k) is None]
        if missing:
            # One task (one read of the store) for every key that arrived together.
            task = asyncio.create_task(self._restore(missing), name="gapwatch-verifier-restore")
            for key in missing:
                self._restoring[key] = task
            task.add_done_callback(functools.partial(self._restored, tuple(missing)))
        tasks = {id(t): t for k in keys if (t := self._restoring.get(k)) is not None}
        return list(tasks.values())

    def _restored(self, keys: tuple[PartitionKey, ...], _task: asyncio.Task[None]) -> None:
        for key in keys:
            self._restoring.pop(key, None)

    async def _await_restoring(self) -> None:
        tasks = set(self._restoring.values())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def take(self, keys: Sequence[PartitionKey]) -> None:
        """Restore ``keys`` (assigned to the application) before their records are marked."""
        tasks = self._ensure_restoring(keys)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _restore(self, keys: list[PartitionKey]) -> None:
        committed: dict[PartitionKey, int] = {}
        found: dict[PartitionKey, Checkpoint] = {}
        try:
            # The store has one reader (its assignment is the read in progress): one
            # restore at a time.
            async with self._read_lock, asyncio.timeout(self.config.timeout):
                await self._started.wait()
                committed = await self._store.committed(keys)
                found = await self._store.load(keys)
        except Exception as exc:
            # Starting fresh is a new baseline: loss across it is not seen. Say so loudly.
            self.health.restore_failures += len(keys)
            log.error("cannot read the verifier checkpoints of %s (%r); starting fresh", keys, exc)
        for key in keys:
            self._adopt(key, found.get(key), committed.get(key))

    def _adopt(self, key: PartitionKey, checkpoint: Checkpoint | None, start: int | None) -> None:
        part = self.ledger.adopt(
            *key,
            snapshot=checkpoint.snapshot if checkpoint is not None else None,
            start_offset=start,
        )
        if part.restored_from == "checkpoint":
            self.health.restores += 1
        elif part.restored_from != "fresh":
            self.health.restore_failures += 1
            log.error("verifier checkpoint of %s/%d %s; started fresh", *key, part.restored_from)
        log.info(
            "verifier holds %s/%d (%s, resumes at %s)", *key, part.restored_from, part.frontier
        )
        for offset, timestamp_ms, headers, at in self._pending.pop(key, ()):
            self._publish(
                self.ledger.processed(
                    part, offset=offset, timestamp_ms=timestamp_ms, headers=headers, now=at
                ),
                at,
            )

    async def give_back(self, keys: Sequence[PartitionKey]) -> None:
        """Checkpoint and forget ``keys`` (revoked from the application)."""
        await self.take([k for k in keys if k in self._pending])
        parts = [p for k in keys if (p := self.ledger.get(*k)) is not None]
        try:
            await self._checkpoint(parts)
        except Exception:
            log.exception("checkpoint on revocation failed; the next owner restores older state")
        for part in parts:
            self.ledger.release(part.topic, part.partition)

    # --- background: confirmation facts and periodic checkpoints -----------------------

    async def _run(self) -> None:
        next_checkpoint = self._clock() + self.config.checkpoint_interval
        while True:
            await asyncio.sleep(self.config.tick_interval)
            try:
                await self._observe()
            except Exception:
                self.health.tick_failures += 1
                log.exception("verifier round failed")
            if self._clock() >= next_checkpoint:
                with contextlib.suppress(Exception):  # counted and logged in _checkpoint
                    await self._checkpoint()
                next_checkpoint = self._clock() + self.config.checkpoint_interval

    async def _observe(self) -> None:
        assigned = self._consumer.assignment()
        for part in self.ledger:
            tp = TopicPartition(part.topic, part.partition)
            if tp not in assigned:
                continue
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation that races with the result, and stop() then waits forever.
                async with asyncio.timeout(_POSITION_TIMEOUT):
                    position = await self._consumer.position(tp)
            except (TimeoutError, IllegalStateError, KafkaError):
                continue  # no position yet, or revoked meanwhile: nothing to conclude
            now = self._clock()
            self._publish(self.ledger.consumed(part, position=position, now=now), now)
        now = self._clock()
        self._publish(self.ledger.tick(now), now)

    async def _checkpoint(self, parts: Sequence[VerifiedPartition] | None = None) -> None:
        async with self._write_lock:
            due = [p for p in (self.ledger if parts is None else parts) if p.needs_checkpoint]
            if not due:
                return
            now = self._clock()
            # Every snapshot at one instant: no await until all are taken.
            batch = {
                (p.topic, p.partition): Checkpoint(p.frontier or 0, now, p.tracker.snapshot())
                for p in due
            }
            versions = [(p, p.version) for p in due]
            try:
                await self._store.write(batch)
            except Exception:
                self.health.checkpoint_failures += len(due)
                log.exception("verifier checkpoint of %d partitions failed", len(due))
                raise
            for part, version in versions:
                self.ledger.checkpointed(part, version)
            self.health.checkpoints += len(due)

    def _publish(self, events: Sequence[Event], now: float) -> None:
        if not events:
            return
        for event in events:
            if isinstance(event, GapConfirmed):
                gap = event.gap
                log.warning(
                    "group %s never processed %d records of %s/%d: producer %s epoch %d "
                    "sequences %d..%d (gap %s)",
                    self.config.group_id,
                    gap.count,
                    gap.topic,
                    gap.partition,
                    gap.producer,
                    gap.epoch,
                    gap.first_seq,
                    gap.last_seq,
                    gap.id,
                )
        self.fanout.publish(events, now)
        self.health.subscriber_failures = sum(self.fanout.failures.values())
