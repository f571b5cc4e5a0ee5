"""The one place that reads aiokafka consumer internals, for what its public API lacks.

Facts the monitor needs that have no public accessor in aiokafka:

* **A partition's fetch state without waiting**: the consumer's position, the high
  watermark of the latest fetch response and when that response arrived. The public
  ``position()`` awaits while the position is unknown and can wait through a rebalance,
  which would deadlock with the rebalance listener on the monitor's lock; ``highwater()``
  asserts assignment. The consumer's position also steps over transaction markers, which
  "last record + 1" would not: without it a transactional partition would never look
  caught up. Read from ``consumer._subscription``.
* **A partition's leader**: the cluster metadata the fetcher itself routes by, read from
  ``consumer._client.cluster``.
* **A metadata refresh now** (tests waiting for a topic just created), instead of at the
  next ``metadata_max_age_ms``: ``consumer._client.force_metadata_update()``.
* **Fetched records without a ``ConsumerRecord`` each** (:class:`RecordFetcher`). The
  monitor and ``gapwatch audit`` read only a record's offset, timestamp and headers, but
  ``getmany()`` builds an 11-field ``ConsumerRecord`` per record through a Python
  generator, which was the largest cost left per record (``docs/benchmarks.md``). The
  record batches aiokafka decoded already (in C) hold record objects with exactly those
  three attributes; :class:`RecordFetcher` hands those out, taking them from the fetcher's
  buffered results as ``getmany()`` does, with the same skipping rules (control batches,
  aborted transactions when reading committed, the head of a batch fetched from its
  middle), limits and position updates.
* **Fetching in incremental fetch sessions** (:class:`FetchSessions`, KIP-227). aiokafka
  0.14 sends every fetch without a session, so each wake-up of its fetch routine walks
  every assigned partition, each request lists them all and each response is decoded and
  walked over all of them; at thousands of partitions each of those holds the event loop
  for tens of milliseconds. :class:`FetchSessions` replaces the fetcher's
  ``_get_actions_per_node`` and ``_proc_fetch_request`` with the same rules, one session
  per broker (the bookkeeping is :mod:`gapwatch.kafka.fetch_session`), and
  :func:`fetch_state` takes a session's confirmation of an omitted partition's high
  watermark into account.

Checked against aiokafka 0.14.0 (the version ``pyproject.toml`` pins, ``>=0.14,<0.15``):
``SubscriptionState.subscription.assignment.state_value(tp)`` with ``has_valid_position``,
``position``, ``highwater`` and ``timestamp``; ``AIOKafkaClient.cluster`` with
``leader_for_partition(tp)`` and ``force_metadata_update()``; for :class:`RecordFetcher`,
``AIOKafkaConsumer.getmany`` and ``Fetcher.fetched_records`` (the waiting and draining
loop), ``FetchResult.getall`` (``check_assignment``, ``_update_position``,
``_partition_records``) and ``PartitionRecords._unpack_records`` (its state:
``_records``, ``_records_iterator``, ``next_fetch_offset``, ``_check_crcs``,
``_isolation_level``, ``_aborted_producers``, and its transaction helpers), read line by
line. :class:`RecordFetcher` uses ``getmany()`` itself for any other aiokafka minor version
or when one of those members is missing (:func:`can_read_batches_directly`). For
:class:`FetchSessions`: ``Fetcher._fetch_requests_routine`` (how it calls the two methods
replaced and what it does with their results), ``_get_actions_per_node``,
``_proc_fetch_request``, ``_update_fetch_positions`` and the fetcher state they use
(``_records``, ``_in_flight``, ``_set_error``, the fetch settings), ``FetchResult``,
``PartitionRecords``, ``TopicPartitionState`` (``_position``, ``_paused``, ``highwater``,
``lso``, ``timestamp``, ``await_reset``, ``consumed_to``), ``ClusterMetadata._partitions``
(replaced by every metadata update) and ``FetchRequest_v7``..``v11`` with their
responses, read line by line; installed only when :func:`can_fetch_in_sessions`. A new aiokafka
minor version must be checked again here before the pin moves. ``pyproject.toml`` lets
ruff's ``SLF001`` pass for this module only.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final, Protocol, TypeAlias

import aiokafka
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka import errors as aiokafka_errors
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.consumer import subscription_state
from aiokafka.errors import ConsumerStoppedError, CorruptRecordException, RecordTooLargeError
from aiokafka.protocol.api import Request
from aiokafka.protocol.fetch import (
    FetchRequest_v7,
    FetchRequest_v8,
    FetchRequest_v9,
    FetchRequest_v10,
    FetchRequest_v11,
)
from aiokafka.record.memory_records import MemoryRecords

from gapwatch.kafka.fetch_session import (
    FETCH_SESSION_ID_NOT_FOUND,
    INVALID_FETCH_SESSION_EPOCH,
    FetchPlan,
    FetchSession,
)


def fetch_state(
    consumer: AIOKafkaConsumer, tp: TopicPartition
) -> tuple[int | None, int | None, int | None]:
    """(position, high watermark, when it was fetched in ms) of ``tp``, without waiting.

    ``(None, None, None)`` while ``tp`` is not assigned; the position is ``None`` while it
    is not known yet.
    """
    subscription = consumer._subscription.subscription
    assignment = None if subscription is None else subscription.assignment
    tp_state = None if assignment is None else assignment.state_value(tp)
    if tp_state is None:
        return None, None, None
    position = tp_state.position if tp_state.has_valid_position else None
    polled_ms = tp_state.timestamp
    sessions = installed_fetch_sessions(consumer)
    if sessions is not None:
        # With fetch sessions a partition absent from a response had its high watermark
        # confirmed unchanged by it (gapwatch.kafka.fetch_session, S5).
        confirmed_ms = sessions.confirmed_at(tp)
        if confirmed_ms is not None and (polled_ms is None or confirmed_ms > polled_ms):
            polled_ms = confirmed_ms
    return position, tp_state.highwater, polled_ms


def partition_leader(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    """The broker id leading ``tp`` in the consumer's cluster metadata (``None`` or negative
    while unknown)."""
    leader: int | None = consumer._client.cluster.leader_for_partition(tp)
    return leader


async def refresh_metadata(consumer: AIOKafkaConsumer) -> None:
    """Ask the cluster for fresh metadata now (new topics, partitions, leaders)."""
    await consumer._client.force_metadata_update()


# --- reading fetched record batches without ConsumerRecords ------------------------------


class FetchedRecord(Protocol):
    """What a record reader gets of each record: aiokafka's ``ConsumerRecord`` on the public
    path, the record batch's own record object on the direct one."""

    @property
    def offset(self) -> int: ...

    @property
    def timestamp(self) -> int: ...

    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]]: ...


FetchedBatches = Mapping[TopicPartition, Sequence[FetchedRecord]]

# The aiokafka minor version whose fetcher this module was read against (see the docstring).
CHECKED_AIOKAFKA_VERSION: Final = (0, 14)
# What the direct path reads or calls; anything missing means "the public path".
_MODULE_MEMBERS: Final = ("FetchResult", "PartitionRecords", "READ_COMMITTED")
_CONSUMER_MEMBERS: Final = ("_closed", "_coordinator", "_subscription", "_max_poll_records")
_FETCHER_MEMBERS: Final = (
    "_records",
    "_subscriptions",
    "_notify",
    "_create_fetch_waiter",
    "_wait_consume_future",
    "_closed",
)
_PARTITION_RECORDS_MEMBERS: Final = (
    "_unpack_records",
    "_consume_aborted_up_to",
    "_contains_abort_marker",
    "_consumer_record",
)
_NO_LIMIT: Final = sys.maxsize


def can_read_batches_directly(consumer: AIOKafkaConsumer) -> bool:
    """Whether :class:`RecordFetcher` may read ``consumer``'s fetched batches itself: the
    checked aiokafka version, started, and every member it relies on present."""
    version = tuple(int(part) for part in aiokafka.__version__.split(".")[:2] if part.isdigit())
    fetcher = getattr(consumer, "_fetcher", None)
    if not all(hasattr(aiokafka_fetcher, name) for name in _MODULE_MEMBERS):
        return False
    partition_records, fetch_result = (
        aiokafka_fetcher.PartitionRecords,
        aiokafka_fetcher.FetchResult,
    )
    return (
        version == CHECKED_AIOKAFKA_VERSION
        and fetcher is not None
        and all(hasattr(consumer, name) for name in _CONSUMER_MEMBERS)
        and all(hasattr(fetcher, name) for name in _FETCHER_MEMBERS)
        and all(hasattr(partition_records, name) for name in _PARTITION_RECORDS_MEMBERS)
        and all(hasattr(fetch_result, name) for name in ("_update_position", "check_assignment"))
    )


class RecordFetcher:
    """``consumer.getmany()`` for readers that need only each record's offset, timestamp and
    headers.

    On the direct path (:attr:`reads_batches_directly`) the records handed out are the
    record batches' own record objects, not ``ConsumerRecord`` objects; the partitions, the
    records, their order, the errors raised and the consumer's positions afterwards are those
    of ``getmany()``. Otherwise (another aiokafka version, or ``direct=False``) it is
    ``getmany()`` itself.
    """

    __slots__ = ("_consumer", "reads_batches_directly")

    def __init__(self, consumer: AIOKafkaConsumer, *, direct: bool = True) -> None:
        """``consumer`` must be started (its fetcher exists only then)."""
        self._consumer = consumer
        self.reads_batches_directly = direct and can_read_batches_directly(consumer)

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int, max_records: int | None = None
    ) -> FetchedBatches:
        """What ``consumer.getmany(*partitions, timeout_ms=..., max_records=...)`` returns."""
        if not self.reads_batches_directly:
            batches: FetchedBatches = await self._consumer.getmany(
                *partitions, timeout_ms=timeout_ms, max_records=max_records
            )
            return batches
        return await _getmany_directly(self._consumer, partitions, timeout_ms, max_records)


async def _getmany_directly(
    consumer: AIOKafkaConsumer,
    partitions: tuple[TopicPartition, ...],
    timeout_ms: int,
    max_records: int | None,
) -> FetchedBatches:
    # AIOKafkaConsumer.getmany() and Fetcher.fetched_records() in one, taking records
    # through BatchReader instead of FetchResult.getall().
    if consumer._closed:
        raise ConsumerStoppedError()
    if max_records is not None and max_records < 1:
        raise ValueError("`max_records` must be a positive Integer")
    consumer._coordinator.check_errors()
    fetcher = consumer._fetcher
    subscription = fetcher._subscriptions
    limit = max_records or consumer._max_poll_records or _NO_LIMIT
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_ms / 1000
    with consumer._subscription.fetch_context():
        while True:
            # Records fetched before a rebalance may not be this member's after it.
            if subscription.reassignment_in_progress:
                await subscription.wait_for_assignment()
            drained = _drain_fetched(fetcher, partitions, limit)
            remaining = deadline - loop.time()
            if drained or remaining <= 0:
                return drained
            waiter = fetcher._create_fetch_waiter()
            done, _ = await asyncio.wait([waiter], timeout=remaining)
            if not done or fetcher._closed:
                waiter.cancel()
                return {}
            waiter.result()  # raises what the fetch routine failed with (authorization)


def _drain_fetched(
    fetcher: Any, partitions: tuple[TopicPartition, ...], limit: int
) -> FetchedBatches:
    """Take up to ``limit`` records from what the fetcher holds, partition by partition."""
    buffered = fetcher._records
    drained: dict[TopicPartition, Sequence[FetchedRecord]] = {}
    for tp in list(buffered):
        if partitions and tp not in partitions:
            if not fetcher._subscriptions.is_assigned(tp):
                del buffered[tp]  # a revoked partition's leftovers
            continue
        result = buffered[tp]
        if type(result) is not aiokafka_fetcher.FetchResult:
            # A fetch error: raised once, unless records are already taken in this call
            # (then it is raised by the next one).
            if drained:
                return drained
            del buffered[tp]
            fetcher._notify(fetcher._wait_consume_future)
            result.check_raise()
        records = _take(result, tp, limit)
        if not result.has_more():
            del buffered[tp]
            fetcher._notify(fetcher._wait_consume_future)  # the fetch routine may go on
        if records:
            drained[tp] = records
            limit -= len(records)
            if limit <= 0:
                break
    return drained


def _take(result: Any, tp: TopicPartition, limit: int) -> Sequence[FetchedRecord]:
    """Up to ``limit`` records of one fetch result; moves the consumer's position past them."""
    # Also drops the result if the partition was revoked, paused or sought meanwhile.
    if not result.check_assignment(tp) or not result.has_more():
        return []
    partition_records = result._partition_records
    reader = BatchReader.of(partition_records)
    if reader is None:
        # Iterated by the public path already (getmany() on the same consumer): finish
        # this result that way, so that no record is read twice or skipped.
        fallback: list[FetchedRecord] = result.getall(limit)
        return fallback
    records = reader.take(limit)
    result._update_position()
    if reader.is_exhausted():
        result._partition_records = None
    return records


class BatchReader:
    """Hands out the records of one ``PartitionRecords`` batch by batch.

    Installed as the ``PartitionRecords``' own record iterator, so that its state (the rest
    of a batch cut by ``max_records``) stays with the fetch result, is dropped with it on a
    seek or a rebalance, and a public ``getmany()`` on the same consumer would continue
    where this left off (:meth:`__next__`). The rules per batch are aiokafka 0.14's
    ``PartitionRecords._unpack_records``: a bad CRC raises ``CorruptRecordException``;
    reading committed, batches of aborted transactions are skipped; control batches are
    skipped; records below the fetch offset (the head of a batch fetched from its middle)
    are skipped; after a batch, the next fetch offset is the batch's end, even when
    compaction removed its last records.

    One difference, on purpose: when a ``max_records`` limit falls exactly at the end of a
    batch, the position moves to the batch's end at once, where aiokafka's generator,
    suspended on the batch's last record, moves it there on the next call. The two differ
    only for a batch whose last records compaction removed, and only by offsets that hold
    no record; no record is skipped or handed out twice.
    """

    __slots__ = ("_batches", "_error", "_owner", "_rest", "_rest_at", "_rest_end")

    def __init__(self, owner: Any) -> None:
        self._owner = owner
        self._batches = owner._records
        self._rest: list[Any] = []  # records of a batch cut by a limit, from _rest_at on
        self._rest_at = 0
        self._rest_end = 0  # that batch's next offset
        self._error: Exception | None = None

    @classmethod
    def of(cls, owner: Any) -> BatchReader | None:
        """``owner``'s reader, installed now if its public iterator has not started yet;
        ``None`` if the public iterator is under way."""
        current = owner._records_iterator
        if type(current) is cls:
            return current
        if current is None or inspect.getgeneratorstate(current) != inspect.GEN_CREATED:
            return None
        current.close()
        reader = cls(owner)
        owner._records_iterator = reader
        return reader

    def is_exhausted(self) -> bool:
        """Whether every record has been handed out (and no error is left to raise)."""
        return (
            self._error is None
            and self._rest_at >= len(self._rest)
            and not self._batches.has_next()
        )

    def take(self, limit: int) -> list[Any]:
        """Up to ``limit`` records, in offset order; the owner's next fetch offset follows."""
        owner = self._owner
        taken: list[Any] = []
        if self._rest_at < len(self._rest):
            taken = self._take_rest(limit)
        while len(taken) < limit and self._error is None and self._batches.has_next():
            try:
                records, end = self._next_batch()
            except CorruptRecordException as exc:
                self._error = exc
                break
            if records is None:
                owner.next_fetch_offset = end
                continue
            room = limit - len(taken)
            if len(records) <= room:
                taken += records
                owner.next_fetch_offset = end
            else:
                taken += records[:room]
                owner.next_fetch_offset = records[room - 1].offset + 1
                self._rest, self._rest_at, self._rest_end = records, room, end
        if not taken and self._error is not None:
            error, self._error = self._error, None
            self._batches = _NO_BATCHES  # the batch is fetched again, as aiokafka does
            raise error
        return taken

    def _take_rest(self, limit: int) -> list[Any]:
        start = self._rest_at
        stop = min(len(self._rest), start + limit)
        taken = self._rest[start:stop]
        self._rest_at = stop
        if stop == len(self._rest):
            self._owner.next_fetch_offset = self._rest_end
            self._rest = []
            self._rest_at = 0
        else:
            self._owner.next_fetch_offset = taken[-1].offset + 1
        return taken

    def _next_batch(self) -> tuple[list[Any] | None, int]:
        """The next batch's records to hand out (``None`` for a batch skipped whole) and
        the batch's next offset."""
        owner = self._owner
        batch = self._batches.next_batch()
        if owner._check_crcs and not batch.validate_crc():
            raise CorruptRecordException(f"Invalid CRC - {owner._tp}")
        if (
            owner._isolation_level == aiokafka_fetcher.READ_COMMITTED
            and batch.producer_id is not None
        ):
            owner._consume_aborted_up_to(batch.base_offset)
            if batch.is_control_batch and owner._contains_abort_marker(batch):
                owner._aborted_producers.discard(batch.producer_id)
            if batch.is_transactional and batch.producer_id in owner._aborted_producers:
                return None, batch.next_offset
        if batch.is_control_batch:
            return None, batch.next_offset
        records = list(batch)
        start = owner.next_fetch_offset
        if records and records[0].offset < start:
            records = [record for record in records if record.offset >= start]
        return records, batch.next_offset

    def __iter__(self) -> BatchReader:
        return self

    def __next__(self) -> Any:
        """One ``ConsumerRecord``, for a public ``getmany()`` on the same consumer."""
        records = self.take(1)
        if not records:
            raise StopIteration
        return self._owner._consumer_record(self._owner._tp, records[0])


class _NoBatches:
    """The batches left after a corrupt one: none (the fetch result is dropped)."""

    def has_next(self) -> bool:
        return False


_NO_BATCHES: Final = _NoBatches()


# --- incremental fetch sessions (KIP-227) -------------------------------------------------

# The fetcher members the session path reads, writes or replaces; anything missing means
# aiokafka's own fetching.
_SESSION_FETCHER_MEMBERS: Final = (
    "_get_actions_per_node",
    "_proc_fetch_request",
    "_records",
    "_in_flight",
    "_client",
    "_set_error",
    "_fetcher_timeout",
    "_retry_backoff",
    "_prefetch_backoff",
    "_fetch_max_wait_ms",
    "_fetch_min_bytes",
    "_fetch_max_bytes",
    "_max_partition_fetch_bytes",
    "_isolation_level",
    "_key_deserializer",
    "_value_deserializer",
    "_check_crcs",
    "_default_reset_strategy",
    "_client_rack",
)
_PARTITION_STATE_MEMBERS: Final = ("_position", "_paused")
# Fetch v7 brought sessions (Kafka 1.1).
MIN_SESSION_FETCH_VERSION: Final = 7
_FETCH_API_KEY: Final = 1
_SESSION_ERRORS: Final = (FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH)
_NOT_THERE: Final = (
    aiokafka_errors.NotLeaderForPartitionError,
    aiokafka_errors.UnknownTopicOrPartitionError,
)

_log = logging.getLogger(__name__)


def can_fetch_in_sessions(consumer: AIOKafkaConsumer) -> bool:
    """Whether :class:`FetchSessions` may take over ``consumer``'s fetching: the checked
    aiokafka version, started, every member it relies on present, no rack-aware fetching
    (KIP-392, which the session path drops: the monitor fetches from leaders), and no
    connected broker below Fetch v7."""
    version = tuple(int(part) for part in aiokafka.__version__.split(".")[:2] if part.isdigit())
    fetcher = getattr(consumer, "_fetcher", None)
    client = getattr(consumer, "_client", None)
    if version != CHECKED_AIOKAFKA_VERSION or fetcher is None or client is None:
        return False
    if not all(hasattr(fetcher, name) for name in _SESSION_FETCHER_MEMBERS):
        return False
    if fetcher._client_rack or not hasattr(client.cluster, "_partitions"):
        return False
    if not all(hasattr(aiokafka_fetcher, name) for name in ("FetchResult", "PartitionRecords")):
        return False
    # The per-partition fields the planning reads are set in __init__: look at a fresh one.
    probe = subscription_state.TopicPartitionState(None)
    if not all(hasattr(probe, name) for name in _PARTITION_STATE_MEMBERS):
        return False
    for conn in list(getattr(client, "_conns", {}).values()):
        fetch_versions = getattr(conn, "_versions", {}).get(_FETCH_API_KEY)
        if fetch_versions is not None and fetch_versions[1] < MIN_SESSION_FETCH_VERSION:
            return False
    return True


def install_fetch_sessions(consumer: AIOKafkaConsumer) -> FetchSessions | None:
    """Make ``consumer`` (started) fetch in incremental fetch sessions, one per broker;
    ``None`` (aiokafka's own fetching stays) unless :func:`can_fetch_in_sessions`."""
    if not can_fetch_in_sessions(consumer):
        _log.warning(
            "Incremental fetch sessions unavailable (aiokafka %s, checked on %s.%s; or a "
            "broker below Fetch v7): fetching every partition in every request",
            aiokafka.__version__,
            *CHECKED_AIOKAFKA_VERSION,
        )
        return None
    sessions = FetchSessions(consumer)
    fetcher = consumer._fetcher
    # aiokafka's fetch routine looks both methods up on the fetcher at every use, so
    # instance attributes replace them from its next wake-up on.
    fetcher._get_actions_per_node = sessions.plan_actions
    fetcher._proc_fetch_request = sessions.fetch
    return sessions


def installed_fetch_sessions(consumer: AIOKafkaConsumer) -> FetchSessions | None:
    """The :class:`FetchSessions` fetching for ``consumer``, if installed."""
    fetcher = getattr(consumer, "_fetcher", None)
    method = getattr(fetcher, "__dict__", {}).get("_proc_fetch_request")
    owner = getattr(method, "__self__", None)
    return owner if isinstance(owner, FetchSessions) else None


# The Fetch versions with sessions that aiokafka 0.14 can encode and decode.
_SessionFetchStruct: TypeAlias = (
    FetchRequest_v7 | FetchRequest_v8 | FetchRequest_v9 | FetchRequest_v10 | FetchRequest_v11
)


class SessionFetchRequest(Request[_SessionFetchStruct]):  # type: ignore[misc]  # untyped
    """A Fetch request (v7-v11) of one session plan: the partitions it names and forgets."""

    API_KEY: ClassVar[int] = _FETCH_API_KEY

    def __init__(
        self,
        plan: FetchPlan[TopicPartition],
        session: FetchSession[TopicPartition],
        *,
        max_wait_ms: int,
        min_bytes: int,
        max_bytes: int,
        isolation_level: int,
    ) -> None:
        self.plan = plan
        self.session = session
        self._fields = (-1, max_wait_ms, min_bytes, max_bytes, isolation_level)

    def build(self, request_struct_class: type[_SessionFetchStruct]) -> _SessionFetchStruct:
        version = request_struct_class.API_VERSION
        with_leader_epoch = version >= 9
        named: dict[str, list[tuple[int, ...]]] = {}
        for tp, (offset, max_bytes) in self.plan.send:
            # -1: no leader epoch (KIP-320 not used), log start offset (a consumer's).
            entry = (
                (tp.partition, -1, offset, -1, max_bytes)
                if with_leader_epoch
                else (tp.partition, offset, -1, max_bytes)
            )
            named.setdefault(tp.topic, []).append(entry)
        forgotten: dict[str, list[int]] = {}
        for tp in self.plan.forget:
            forgotten.setdefault(tp.topic, []).append(tp.partition)
        args: list[object] = [
            *self._fields,
            self.plan.session_id,
            self.plan.epoch,
            list(named.items()),
            list(forgotten.items()),
        ]
        if version >= 11:
            args.append("")  # rack id: none (the monitor fetches from leaders)
        return request_struct_class(*args)


class FetchSessions:
    """aiokafka's fetch planning and fetch handling, with one incremental fetch session
    (KIP-227, :mod:`gapwatch.kafka.fetch_session`) per broker.

    Installed in place of the fetcher's ``_get_actions_per_node`` and
    ``_proc_fetch_request`` (aiokafka 0.14), keeping their rules: a broker gets no fetch
    while one is in flight to it or while records it sent wait unconsumed (within the
    prefetch backoff); partitions without a position are reset through aiokafka's own
    offset lookup; paused partitions are not fetched; a missing leader asks for metadata;
    records fetched at an offset that is no longer the position are dropped; aborted
    transactions and the last stable offset are handed to aiokafka's ``PartitionRecords``
    as before; errors per partition are handled as aiokafka handles them.

    What differs, on purpose: each wake-up looks only at the brokers it may fetch from
    (a broker whose buffered records still wait is skipped whole, reset lookups included,
    until its backoff ends); the partitions are grouped by leader once per assignment and
    metadata change, not per wake-up; nothing is logged per partition; a request names
    only the partitions whose fetch offset changed; a response is walked only over the
    partitions it holds; a partition's high watermark is applied whenever the broker sends
    it without an error, even when its records are dropped (the watermark is a fact of the
    log, and the session's confirmation depends on the client holding the last one sent);
    KIP-392's preferred read replicas are not used.
    """

    __slots__ = (
        "_assignment",
        "_by_node",
        "_client",
        "_fetcher",
        "_has_leaderless",
        "_layout_of",
        "_node_of",
        "_retired_resets",
        "_sessions",
    )

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._fetcher = consumer._fetcher
        self._client = consumer._client
        self._sessions: dict[int, FetchSession[TopicPartition]] = {}
        self._retired_resets = 0
        self._assignment: Any = None
        self._layout_of: Any = None  # the cluster metadata the grouping was made from
        self._by_node: dict[int, list[tuple[TopicPartition, Any]]] = {}
        self._node_of: dict[TopicPartition, int] = {}
        self._has_leaderless = False

    @property
    def resets(self) -> int:
        """How many sessions started over after a failed request or a session error."""
        return self._retired_resets + sum(s.resets for s in self._sessions.values())

    def confirmed_at(self, tp: TopicPartition) -> int | None:
        """When a session last confirmed ``tp``'s high watermark as the consumer holds it
        (ms), or ``None``."""
        session = self._sessions.get(self._node_of.get(tp, -1))
        return None if session is None else session.confirmed_at(tp)

    def _uninstall(self) -> None:
        # Drops the instance attributes install_fetch_sessions set: the class's methods
        # (aiokafka's) are found again; fetch_state no longer sees this object.
        for name in ("_get_actions_per_node", "_proc_fetch_request"):
            self._fetcher.__dict__.pop(name, None)

    # --- what to do at a wake-up of aiokafka's fetch routine --------------------------

    def plan_actions(self, assignment: Any) -> tuple[Any, ...]:
        """What ``Fetcher._get_actions_per_node`` returns: (fetch requests by node, offset
        resets by node, the routine's timeout, whether metadata is missing, resume
        futures of paused partitions)."""
        fetcher = self._fetcher
        if assignment is not self._assignment:
            self._start_assignment(assignment)
        if self._client.cluster._partitions is not self._layout_of:
            self._lay_out(assignment)
        buffered = fetcher._records
        in_flight = fetcher._in_flight
        backoffs: dict[int, float] = {}
        for tp, result in buffered.items():
            backoff = result.calculate_backoff()
            if backoff:
                node = self._node_of.get(tp, -1)
                backoffs[node] = max(backoff, backoffs.get(node, 0.0))
        requests: list[tuple[int, SessionFetchRequest]] = []
        awaiting_reset: dict[int, list[TopicPartition]] = {}
        resume_futures: list[Any] = []
        max_bytes = fetcher._max_partition_fetch_bytes
        for node, partitions in self._by_node.items():
            if node in in_flight or node in backoffs:
                continue
            wanted: dict[TopicPartition, tuple[int, int]] = {}
            resets: list[TopicPartition] = []
            # TopicPartitionState's plain fields, not its properties: this loop runs over
            # every partition of the broker once per fetch.
            for tp, state in partitions:
                if tp in buffered:
                    continue
                position = state._position
                if position is None:
                    resets.append(tp)
                elif state._paused:
                    resume_futures.append(state.resume_fut)
                else:
                    wanted[tp] = (position, max_bytes)
            if resets:
                awaiting_reset[node] = resets
            elif wanted:
                requests.append((node, self._request(node, wanted)))
        timeout = min(backoffs.values()) if backoffs else fetcher._fetcher_timeout
        return requests, awaiting_reset, timeout, self._has_leaderless, resume_futures

    def _start_assignment(self, assignment: Any) -> None:
        # The sessions' confirmations belong to the old assignment's partition states.
        for session in self._sessions.values():
            session.reset(failed=False)
        self._assignment = assignment
        self._layout_of = None

    def _lay_out(self, assignment: Any) -> None:
        cluster = self._client.cluster
        self._layout_of = cluster._partitions
        by_node: dict[int, list[tuple[TopicPartition, Any]]] = {}
        node_of: dict[TopicPartition, int] = {}
        has_leaderless = False
        for tp in assignment.tps:
            leader = cluster.leader_for_partition(tp)
            if leader is None or leader < 0:
                has_leaderless = True
                continue
            node_of[tp] = leader
            by_node.setdefault(leader, []).append((tp, assignment.state_value(tp)))
        self._by_node, self._node_of, self._has_leaderless = by_node, node_of, has_leaderless

    def _request(
        self, node: int, wanted: dict[TopicPartition, tuple[int, int]]
    ) -> SessionFetchRequest:
        session = self._sessions.get(node)
        if session is None:
            session = self._sessions[node] = FetchSession()
        fetcher = self._fetcher
        return SessionFetchRequest(
            session.plan(wanted),
            session,
            max_wait_ms=fetcher._fetch_max_wait_ms,
            min_bytes=fetcher._fetch_min_bytes,
            max_bytes=fetcher._fetch_max_bytes,
            isolation_level=fetcher._isolation_level,
        )

    # --- one fetch ----------------------------------------------------------------------

    async def fetch(self, assignment: Any, node_id: int, request: SessionFetchRequest) -> bool:
        """What ``Fetcher._proc_fetch_request`` does: send, then buffer what came back.
        Returns whether there is something new for the readers."""
        fetcher = self._fetcher
        session = request.session
        try:
            response = await self._client.send(node_id, request)
        except NotImplementedError:
            # This broker speaks no Fetch version with sessions (below v7, older than
            # Kafka 1.1; the gate saw only the brokers connected at start): aiokafka's own
            # fetching takes over for good, from the routine's next wake-up on.
            _log.warning("Broker %s has no fetch sessions (Fetch < v7): fetching without", node_id)
            self._uninstall()
            return False
        except aiokafka_errors.KafkaError as exc:
            session.reset()
            _log.error("Failed fetch messages from %s: %s", node_id, exc)
            await asyncio.sleep(fetcher._retry_backoff)
            return False
        except asyncio.CancelledError:
            # close() or a new assignment; the broker may or may not have taken it.
            session.reset(failed=False)
            return False
        if not assignment.active:
            session.reset(failed=False)
            return False
        if response.error_code:
            session.reset()
            if response.error_code in _SESSION_ERRORS:
                _log.info(
                    "Fetch session with broker %s lost (error %s): fetching all partitions again",
                    node_id,
                    response.error_code,
                )
            else:
                _log.warning(
                    "Fetch from broker %s failed: %s",
                    node_id,
                    aiokafka_errors.for_code(response.error_code).__name__,
                )
                await asyncio.sleep(fetcher._retry_backoff)
            return False
        now_ms = int(1000 * time.time())
        plan = request.plan
        session.commit(plan, session_id=response.session_id, now_ms=now_ms)
        asked = plan.wanted
        has_news = False
        for topic, partitions in response.topics:
            for partition, error_code, highwater, lso, _, aborted, *rest in partitions:
                tp = TopicPartition(topic, partition)
                target = asked.get(tp)
                if target is None:
                    continue  # not asked for by this request (cannot happen on a sane broker)
                state = assignment.state_value(tp)
                fetch_offset = target[0]
                is_current = state._position == fetch_offset
                if error_code:
                    session.note_unconfirmed(tp)
                    if is_current:
                        has_news |= self._partition_failed(state, tp, error_code, fetch_offset)
                    continue
                state.highwater = highwater
                state.lso = lso
                state.timestamp = now_ms
                session.note_included(tp)
                if is_current:
                    has_news |= self._buffer(assignment, state, tp, fetch_offset, aborted, rest[-1])
        return has_news

    def _buffer(
        self,
        assignment: Any,
        state: Any,
        tp: TopicPartition,
        fetch_offset: int,
        aborted: Any,
        message_set: bytes,
    ) -> bool:
        fetcher = self._fetcher
        records = MemoryRecords(message_set)
        if records.has_next():
            partition_records = aiokafka_fetcher.PartitionRecords(
                tp,
                records,
                aborted,
                fetch_offset,
                fetcher._key_deserializer,
                fetcher._value_deserializer,
                fetcher._check_crcs,
                fetcher._isolation_level,
            )
            fetcher._records[tp] = aiokafka_fetcher.FetchResult(
                tp,
                partition_records=partition_records,
                assignment=assignment,
                backoff=fetcher._prefetch_backoff,
            )
            return True
        if records.size_in_bytes() > 0:
            # Bytes but not one whole record: a record larger than the fetch size, which
            # no fetch would ever return.
            fetcher._set_error(
                tp,
                RecordTooLargeError(
                    f"a record at {tp}={fetch_offset} is larger than the fetch size "
                    f"{fetcher._max_partition_fetch_bytes}; raise max_partition_fetch_bytes"
                ),
            )
            state.consumed_to(fetch_offset + 1)
            return True
        return False

    def _partition_failed(
        self, state: Any, tp: TopicPartition, error_code: int, fetch_offset: int
    ) -> bool:
        fetcher = self._fetcher
        error_type = aiokafka_errors.for_code(error_code)
        if error_type in _NOT_THERE:
            self._client.force_metadata_update()
            return False
        if error_type is aiokafka_errors.OffsetOutOfRangeError:
            _log.info("Fetch offset %s is out of range for partition %s", fetch_offset, tp)
            if fetcher._default_reset_strategy != aiokafka_fetcher.OffsetResetStrategy.NONE:
                state.await_reset(fetcher._default_reset_strategy)
                return False
            fetcher._set_error(tp, aiokafka_errors.OffsetOutOfRangeError({tp: fetch_offset}))
            return True
        if error_type is aiokafka_errors.TopicAuthorizationFailedError:
            _log.warning("Not authorized to read from topic %s.", tp.topic)
            fetcher._set_error(tp, aiokafka_errors.TopicAuthorizationFailedError(tp.topic))
            return True
        _log.warning("Unexpected error while fetching %s: %s", tp, error_type.__name__)
        return False
