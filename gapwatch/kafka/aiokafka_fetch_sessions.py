"""Incremental fetch sessions (KIP-227) for an aiokafka consumer: the one place that
replaces part of aiokafka's fetcher.

aiokafka 0.14 sends every fetch without a session, so each wake-up of its fetch routine walks
every assigned partition, each request lists them all and each response is decoded and
walked over all of them; at thousands of partitions each of those holds the event loop for
tens of milliseconds. :class:`FetchSessions` replaces the fetcher's
``_get_actions_per_node`` and ``_proc_fetch_request`` with the same rules, one session per
broker (the bookkeeping is :mod:`gapwatch.kafka.fetch_session`), and
:meth:`FetchSessions.confirmed_at` tells
:func:`gapwatch.kafka.aiokafka_consumer.fetch_state` when a session last confirmed an
omitted partition's high watermark.

Checked against aiokafka 0.14.0 (the version ``pyproject.toml`` pins, ``>=0.14,<0.15``),
separately from the record fetcher's members (``aiokafka_consumer.py``), so each gate moves
only when its own members were read again: ``Fetcher._fetch_requests_routine`` (how it calls
the two methods replaced and what it does with their results), ``_get_actions_per_node``,
``_proc_fetch_request``, ``_update_fetch_positions`` and the fetcher state they use
(``_records``, ``_in_flight``, ``_set_error``, the fetch settings), ``FetchResult``,
``PartitionRecords``, ``TopicPartitionState`` (``_position``, ``_paused``, ``highwater``,
``lso``, ``timestamp``, ``await_reset``, ``consumed_to``), ``ClusterMetadata._partitions``
(replaced by every metadata update) and ``FetchRequest_v7``..``v11`` with their
responses, read line by line; installed only when :func:`can_fetch_in_sessions`.
``pyproject.toml`` lets ruff's ``SLF001`` pass for this module and ``aiokafka_consumer.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, ClassVar, Final, TypeAlias

import aiokafka
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka import errors as aiokafka_errors
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.consumer import subscription_state
from aiokafka.errors import RecordTooLargeError
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

# The aiokafka minor version this module's fetcher members were read on (see above).
SESSIONS_CHECKED_AIOKAFKA_VERSION: Final = (0, 14)

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
    if version != SESSIONS_CHECKED_AIOKAFKA_VERSION or fetcher is None or client is None:
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
            *SESSIONS_CHECKED_AIOKAFKA_VERSION,
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
