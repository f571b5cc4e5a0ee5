"""Small async helpers over aiokafka's ``AIOKafkaAdminClient``.

aiokafka returns raw protocol responses and does not raise on per-topic error codes, so
every helper here inspects those codes itself. Each call opens and closes its own client:
a few milliseconds on loopback, and no connection state survives a node being killed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaClient
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, for_code

from gapwatch.testing._errors import TopicError

_T = TypeVar("_T")
POLL_INTERVAL = 0.1
# Short on purpose: aiokafka sends metadata requests to a random known broker, and one that
# is SIGSTOPped accepts the TCP connection but never answers. A short timeout bounds that
# hang; the polling loops then simply retry (probably on another broker).
_POLL_TIMEOUT_MS = 3_000


@dataclass(frozen=True, slots=True)
class PartitionState:
    """One partition as the cluster's metadata describes it (broker ids = ``node.id``)."""

    topic: str
    partition: int
    leader: int | None
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@asynccontextmanager
async def admin_client(
    bootstrap_servers: str,
    *,
    request_timeout_ms: int = _POLL_TIMEOUT_MS,
    options: Mapping[str, Any] | None = None,
) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, always closed again (even if starting it failed).

    ``options`` are further aiokafka arguments: the security settings of a secured cluster.
    """
    client = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        request_timeout_ms=request_timeout_ms,
        **dict(options or {}),
    )
    try:
        await client.start()
        yield client
    finally:
        await client.close()


def _error_name(code: int) -> str:
    return str(for_code(code).__name__)


async def create_topic(
    bootstrap_servers: str,
    name: str,
    *,
    partitions: int,
    replication_factor: int,
    configs: Mapping[str, str] | None,
    timeout_s: float,
    placement: Sequence[Sequence[int]] | None = None,
    options: Mapping[str, Any] | None = None,
) -> None:
    """Create ``name``, raise :class:`TopicError` on any error code, wait for all leaders.

    ``placement`` lists the replicas of each partition, preferred leader first; Kafka then
    wants -1 for the partition count and replication factor."""
    topic = NewTopic(
        name=name,
        num_partitions=-1 if placement else partitions,
        replication_factor=-1 if placement else replication_factor,
        replica_assignments=(
            {i: list(replicas) for i, replicas in enumerate(placement)} if placement else None
        ),
        topic_configs=dict(configs or {}),
    )
    timeout_ms = int(timeout_s * 1000)
    async with admin_client(
        bootstrap_servers, request_timeout_ms=timeout_ms, options=options
    ) as admin:
        response = await admin.create_topics([topic], timeout_ms=timeout_ms)
    # Each entry is (topic, error_code[, error_message]) depending on the response version.
    for entry in response.topic_errors:
        code = entry[1]
        if code != 0:
            message = entry[2] if len(entry) > 2 and entry[2] else ""
            raise TopicError(f"creating topic {name!r} failed: {_error_name(code)} {message}")
    await wait_for_topic_leaders(
        bootstrap_servers,
        name,
        partitions=len(placement) if placement else partitions,
        timeout_s=timeout_s,
        options=options,
    )


async def _topic_metadata(
    bootstrap_servers: str, topic: str, options: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    async with admin_client(bootstrap_servers, options=options) as admin:
        topics = await admin.describe_topics([topic])
    for entry in topics:
        if entry["topic"] == topic:
            found: dict[str, Any] = entry
            return found
    return None


def _partition_states(topic: str, metadata: Mapping[str, Any]) -> dict[int, PartitionState]:
    states: dict[int, PartitionState] = {}
    for part in metadata["partitions"]:
        leader = int(part["leader"])
        states[int(part["partition"])] = PartitionState(
            topic=topic,
            partition=int(part["partition"]),
            leader=leader if leader >= 0 else None,
            replicas=tuple(int(r) for r in part["replicas"]),
            isr=tuple(int(r) for r in part["isr"]),
        )
    return states


async def wait_for_topic_leaders(
    bootstrap_servers: str,
    topic: str,
    *,
    partitions: int,
    timeout_s: float,
    options: Mapping[str, Any] | None = None,
) -> None:
    """Wait until metadata lists ``partitions`` partitions of ``topic``, each with a leader."""
    deadline = time.monotonic() + timeout_s
    last = "no metadata yet"
    while time.monotonic() < deadline:
        try:
            metadata = await _topic_metadata(bootstrap_servers, topic, options)
        except KafkaError as exc:
            last = repr(exc)
        else:
            if metadata is not None and metadata["error_code"] == 0:
                states = _partition_states(topic, metadata)
                if len(states) == partitions and all(s.leader is not None for s in states.values()):
                    return
                last = f"partitions: {sorted(states.values(), key=lambda s: s.partition)}"
            elif metadata is not None:
                last = _error_name(metadata["error_code"])
        await asyncio.sleep(POLL_INTERVAL)
    raise TopicError(
        f"topic {topic!r} had no leader for every partition after {timeout_s} s: {last}"
    )


async def topic_partitions(
    bootstrap_servers: str,
    topic: str,
    *,
    timeout_s: float = 30.0,
    options: Mapping[str, Any] | None = None,
) -> set[int]:
    """The partition ids of ``topic``, once metadata lists them (a new topic's may lag)."""
    deadline = time.monotonic() + timeout_s
    last = "no metadata yet"
    while True:
        try:
            metadata = await _topic_metadata(bootstrap_servers, topic, options)
        except KafkaError as exc:
            last = repr(exc)
        else:
            if metadata is not None and metadata["error_code"] == 0 and metadata["partitions"]:
                return {int(part["partition"]) for part in metadata["partitions"]}
            if metadata is not None and metadata["error_code"] != 0:
                last = _error_name(metadata["error_code"])
        if time.monotonic() >= deadline:
            raise TopicError(f"no partitions of topic {topic!r} after {timeout_s} s: {last}")
        await asyncio.sleep(POLL_INTERVAL)


async def describe_partition(
    bootstrap_servers: str,
    topic: str,
    partition: int,
    *,
    options: Mapping[str, Any] | None = None,
) -> PartitionState:
    """Leader, replicas and ISR of one partition, from a single metadata request."""
    metadata = await _topic_metadata(bootstrap_servers, topic, options)
    if metadata is None or metadata["error_code"] != 0:
        reason = "absent" if metadata is None else _error_name(metadata["error_code"])
        raise TopicError(f"cannot describe topic {topic!r}: {reason}")
    states = _partition_states(topic, metadata)
    if partition not in states:
        raise TopicError(f"topic {topic!r} has no partition {partition}")
    return states[partition]


async def wait_for_partition(
    bootstrap_servers: str,
    topic: str,
    partition: int,
    *,
    timeout_s: float,
    exclude_leaders: Collection[int] = (),
    isr_includes: Collection[int] = (),
    options: Mapping[str, Any] | None = None,
) -> PartitionState:
    """Poll until the partition has a leader not in ``exclude_leaders`` and an ISR that
    contains every id in ``isr_includes``; return that state.

    Connection errors while polling are expected (a node was just killed) and retried.
    """
    deadline = time.monotonic() + timeout_s
    last: object = "no metadata yet"
    while time.monotonic() < deadline:
        try:
            state = await describe_partition(bootstrap_servers, topic, partition, options=options)
        except (KafkaError, TopicError) as exc:
            last = exc
        else:
            last = state
            has_leader = state.leader is not None and state.leader not in exclude_leaders
            if has_leader and set(isr_includes) <= set(state.isr):
                return state
        await asyncio.sleep(POLL_INTERVAL)
    raise TopicError(f"{topic}-{partition} did not reach the wanted state in {timeout_s} s: {last}")


async def broker_ids(
    bootstrap_servers: str, *, options: Mapping[str, Any] | None = None
) -> set[int]:
    """Ids of the brokers the cluster's metadata currently lists (i.e. unfenced brokers)."""
    async with admin_client(bootstrap_servers, options=options) as admin:
        cluster = await admin.describe_cluster()
    return {int(broker["node_id"]) for broker in cluster["brokers"]}


async def broker_ids_seen_by(
    bootstrap: str, *, options: Mapping[str, Any] | None = None
) -> set[int]:
    """Broker ids that the one node at ``bootstrap`` lists in its own metadata.

    The bootstrap metadata request goes to that node, unlike admin requests, which go to
    a random known broker; so this tells whether *this* node serves clients and which
    brokers its metadata cache holds as registered and unfenced.
    """
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap, request_timeout_ms=_POLL_TIMEOUT_MS, **dict(options or {})
    )
    try:
        await client.bootstrap()
        return {int(broker.nodeId) for broker in client.cluster.brokers()}
    finally:
        await client.close()


def run_sync(make_coro: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion from sync code, even if a loop runs in this thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    # Called from async code (e.g. a fixture started lazily inside an async test): use a
    # private loop in a worker thread; the caller's loop is blocked meanwhile, as with any
    # sync call.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make_coro())).result()
