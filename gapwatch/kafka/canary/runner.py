"""The canary at work: keeps its topic placed, writes every partition, restores leaders.

Two tasks on the caller's event loop:

* the **check loop**, every ``check_interval`` seconds: one Metadata request for the
  brokers and the canary topic (leaders, replicas, in-sync replicas); new brokers get a
  partition of their own (CreatePartitions), partitions of brokers missing for longer than
  ``departure`` are moved (AlterPartitionReassignments), and a partition whose preferred
  leader is back in sync but not leading gets a preferred-leader election (ElectLeaders).
  Leadership moves away from a failed broker and, like the test bed, many clusters do not
  move it back by themselves (``auto.leader.rebalance.enable=false``, or its 5-minute
  check), so without this a broker would stay unavailable after it recovered.
* the **write loop**, every ``1/rate`` seconds: for each partition without a write in
  flight, write its lane's record (:mod:`gapwatch.kafka.canary.lanes`): a new one, or the
  one that failed last time, same stamp. A write gets ``request_timeout`` seconds.

The canary's own producer uses ``acks=all``, no linger and a short request timeout. It
writes only: a monitor must read the topic (``gapwatch monitor --canary`` does both), so
loss on it is found by the same tracker as on any topic.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
    for_code,
)
from aiokafka.protocol.api import Request
from aiokafka.structs import TopicPartition

from gapwatch.kafka.acl_requests import MetadataV8Request, require_granted
from gapwatch.kafka.acls import Acl, Operation, ResourceType
from gapwatch.kafka.canary.availability import LastWrite, availability, listed_brokers
from gapwatch.kafka.canary.lanes import CanaryRecord, Lane, canary_value
from gapwatch.kafka.canary.leadership import elect_preferred_leaders, reassign_partitions
from gapwatch.kafka.canary.placement import Placement, min_insync_replicas, plan_placement
from gapwatch.kafka.canary.settings import CanarySettings
from gapwatch.kafka.canary.stats import CanaryStats
from gapwatch.kafka.topics import TOPIC_ALREADY_EXISTS, TopicSetupError, explain_code

log = logging.getLogger(__name__)

UNKNOWN_TOPIC_OR_PARTITION: Final = 3
# An hour of records, in segments of ten minutes: retention deletes whole closed segments
# only, and with the default segment settings a canary segment would close after a week.
CANARY_RETENTION_MS: Final = 3_600_000
CANARY_SEGMENT_MS: Final = 600_000
START_TIMEOUT: Final = 60.0


def canary_topic_configs(broker_count: int) -> dict[str, str]:
    """The canary topic's settings: min ISR 2 (1 on one broker), an hour of retention."""
    return {
        "min.insync.replicas": str(min_insync_replicas(broker_count)),
        "retention.ms": str(CANARY_RETENTION_MS),
        "segment.ms": str(CANARY_SEGMENT_MS),
        "cleanup.policy": "delete",
    }


class _TopicMetadataRequest(Request[MetadataV8Request]):  # type: ignore[misc]
    """Metadata of one topic and the brokers; never creates the topic."""

    API_KEY: ClassVar[int] = 3

    def __init__(self, topic: str) -> None:
        self._topic = topic

    def build(self, request_struct_class: type[MetadataV8Request]) -> MetadataV8Request:
        return request_struct_class([self._topic], False, False, False)


@dataclass(frozen=True, slots=True)
class TopicView:
    """What one Metadata response says about the brokers and the canary topic."""

    brokers: frozenset[int]
    exists: bool
    leaders: Mapping[int, int | None] = field(default_factory=dict)
    replicas: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    in_sync: Mapping[int, frozenset[int]] = field(default_factory=dict)


async def read_topic_view(client: AIOKafkaClient, topic: str) -> TopicView:
    """Brokers, leaders, replicas and ISR of ``topic``, in one Metadata request."""
    response = await client.send(client.get_random_node(), _TopicMetadataRequest(topic))
    brokers = frozenset(int(b[0]) for b in response.brokers)
    for error_code, name, _internal, partitions, _ops in response.topics:
        if name != topic:
            continue
        if error_code == UNKNOWN_TOPIC_OR_PARTITION:
            return TopicView(brokers=brokers, exists=False)
        if error_code:
            raise for_code(error_code)(f"metadata of the canary topic {topic!r}")
        leaders: dict[int, int | None] = {}
        replicas: dict[int, tuple[int, ...]] = {}
        in_sync: dict[int, frozenset[int]] = {}
        for _err, partition, leader, _epoch, reps, isr, _offline in partitions:
            leaders[partition] = leader if leader >= 0 else None
            replicas[partition] = tuple(reps)
            in_sync[partition] = frozenset(isr)
        return TopicView(brokers, True, leaders, replicas, in_sync)
    return TopicView(brokers=brokers, exists=False)


async def create_canary_topic(
    admin: AIOKafkaAdminClient, topic: str, *, brokers: Sequence[int] | None = None
) -> bool:
    """Create the canary topic with a partition led by each broker (``brokers``, default
    those the metadata lists); ``False`` if it exists. ``gapwatch acls --apply`` calls this
    as the admin, the canary itself when the topic is missing."""
    if brokers is None:
        cluster = await admin.describe_cluster()
        brokers = [int(b["node_id"]) for b in cluster["brokers"]]
    placement = plan_placement(brokers, {})
    assignments = {p: list(r) for p, r in enumerate(placement.new_partitions)}
    new = NewTopic(
        topic,
        num_partitions=-1,
        replication_factor=-1,
        replica_assignments=assignments,
        topic_configs=canary_topic_configs(len(brokers)),
    )
    response = await admin.create_topics([new])
    for topic_error in response.topic_errors:
        code = topic_error[1]
        if code == TOPIC_ALREADY_EXISTS:
            return False
        if code:
            message = topic_error[2] if len(topic_error) > 2 else ""
            raise TopicSetupError(
                f"cannot create canary topic {topic!r}: {explain_code(code, message)}"
            )
    log.info("created canary topic %s: %s", topic, assignments)
    return True


def canary_identity() -> tuple[str, int]:
    """This canary's producer id (host and process) and epoch (start time in ms)."""
    return f"gapwatch-canary/{socket.gethostname()}/{os.getpid()}", time.time_ns() // 1_000_000


class Canary:
    """Writes the canary topic of ``settings`` with clients built from ``client_kwargs``:
    :meth:`start`, then :meth:`stop`. Read its state with :meth:`availability` and
    :attr:`stats`."""

    def __init__(
        self,
        settings: CanarySettings,
        *,
        client_kwargs: Mapping[str, Any],
        principal: str = "User:ANONYMOUS",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        # Named in the one line a refused WRITE stops the start with.
        self.principal = principal
        self.producer_id, self.epoch = canary_identity()
        self.stats = CanaryStats()
        self._clock = clock
        self._kwargs = dict(client_kwargs)
        self._value = canary_value(settings.value_size)
        self._lanes: dict[int, Lane] = {}
        self._writes: set[asyncio.Task[None]] = set()
        self._last_seen: dict[int, float] = {}
        self._view = TopicView(brokers=frozenset(), exists=False)
        self._placement = Placement()
        self._last_writes: dict[int, LastWrite] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._started: AIOKafkaProducer | None = None
        # Cleared (and said once) when the cluster refuses ALTER: writing goes on.
        self._may_move = True
        self._said_write_refused = False

    @property
    def _producer(self) -> AIOKafkaProducer:
        assert self._started is not None, "the canary is not started"
        return self._started

    def _build_producer(self) -> AIOKafkaProducer:
        # Built at start, not in __init__: aiokafka needs the running event loop.
        client_id = f"{self._kwargs.get('client_id', 'gapwatch')}-canary"
        return AIOKafkaProducer(
            **{**self._kwargs, "client_id": client_id},
            acks="all",
            linger_ms=0,
            request_timeout_ms=int(self.settings.request_timeout * 1000),
            # Leadership must be seen soon after it moves; the canary knows few topics.
            metadata_max_age_ms=max(1000, int(self.settings.check_interval * 1000)),
        )

    # --- life cycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, create or re-place the topic, start writing. Bounded by 60 s."""
        self._started = self._build_producer()
        async with asyncio.timeout(START_TIMEOUT):
            await self._producer.start()
            await self._check()
            while not self._view.exists or not self._view.leaders:
                await asyncio.sleep(0.2)
                await self._check()
            await self._producer.partitions_for(self.settings.topic)
            # Refused writes would look like failing brokers: refuse to start instead,
            # naming the ACL (the moving ones are optional, see _check).
            write = Acl(self.principal, ResourceType.TOPIC, self.settings.topic, Operation.WRITE)
            await require_granted(self._kwargs, [write])
        self._tasks = [
            asyncio.create_task(self._check_loop(), name="gapwatch-canary-check"),
            asyncio.create_task(self._write_loop(), name="gapwatch-canary-write"),
        ]

    async def stop(self) -> None:
        """Stop writing (writes in flight get their timeout) and close the producer."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._writes:
            await asyncio.wait(self._writes, timeout=self.settings.request_timeout + 1.0)
        if self._started is not None:
            await self._started.stop()

    # --- what it knows ---------------------------------------------------------------

    @property
    def owners(self) -> Mapping[int, int]:
        """Partition -> the broker it belongs to (its wanted preferred leader)."""
        return self._placement.owners

    @property
    def leaders(self) -> Mapping[int, int | None]:
        """Partition -> its leader, as of the last check."""
        return self._view.leaders

    @property
    def replicas(self) -> Mapping[int, tuple[int, ...]]:
        """Partition -> its replica list (preferred leader first), as of the last check."""
        return self._view.replicas

    @property
    def placement_is_settled(self) -> bool:
        """Whether the last check found the topic placed as wanted (nothing to move)."""
        return self._placement.is_settled

    def brokers(self) -> list[int]:
        """The brokers the canary answers for (rule A0 of
        :mod:`gapwatch.kafka.canary.availability`)."""
        return listed_brokers(
            dict(self._last_seen),
            dict(self.owners),
            now=self._clock(),
            departure=self.settings.departure,
        )

    def availability(self) -> dict[int, bool]:
        """Broker -> whether it takes canary writes now (rules of
        :mod:`gapwatch.kafka.canary.availability`)."""
        # Copies (one C call each): a scrape may run in another thread (gapwatch canary).
        return availability(
            self.brokers(),
            owners=dict(self.owners),
            leaders=dict(self._view.leaders),
            last_writes=dict(self._last_writes),
            now=self._clock(),
            window=self.settings.window,
        )

    # --- the check loop ----------------------------------------------------------------

    async def _check_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.check_interval)
            try:
                async with asyncio.timeout(max(self.settings.check_interval * 2, 5.0)):
                    await self._check()
            except (KafkaError, TimeoutError, OSError) as exc:
                self.stats.check_failures += 1
                log.warning("canary check failed: %s", exc or type(exc).__name__)
            except Exception:
                # Anything else (a refused topic creation...) is counted and logged too:
                # the canary keeps writing, and the next check tries again.
                self.stats.check_failures += 1
                log.exception("canary check failed")

    async def _check(self) -> None:
        client = self._producer.client
        topic = self.settings.topic
        view = await read_topic_view(client, topic)
        now = self._clock()
        for broker in view.brokers:
            self._last_seen[broker] = now
        present = {
            b for b, seen in self._last_seen.items() if now - seen <= self.settings.departure
        }
        if not view.exists:
            await self._create_topic(sorted(view.brokers))
            return
        placement = plan_placement(present, view.replicas)
        self._view = view
        self._placement = placement
        if not self._may_move:
            return
        try:
            if not placement.is_settled:
                await self._apply(placement, view)
            await self._restore_leaders(view, placement)
        except (ClusterAuthorizationFailedError, TopicAuthorizationFailedError) as exc:
            self._may_move = False
            log.warning(
                "canary: not authorized to move leaders or partitions (%s; see gapwatch acls "
                "--role canary); it keeps writing and measuring",
                type(exc).__name__,
            )

    async def _create_topic(self, brokers: list[int]) -> None:
        admin = AIOKafkaAdminClient(**self._kwargs)
        await admin.start()
        try:
            await create_canary_topic(admin, self.settings.topic, brokers=brokers)
        finally:
            await admin.close()

    async def _apply(self, placement: Placement, view: TopicView) -> None:
        topic = self.settings.topic
        self.stats.placement_changes += 1
        if placement.reassign:
            log.info("canary: moving partitions %s", dict(placement.reassign))
            node = _some_leader(view)
            await reassign_partitions(self._producer.client, node, topic, placement.reassign)
            resized = any(
                len(replicas) != len(view.replicas[p]) for p, replicas in placement.reassign.items()
            )
            if resized:
                # The replication factor changes (the cluster grew or shrank past three
                # brokers, or from one): min.insync.replicas follows it (rule P1).
                # The new replica count stands for the broker count: the settings depend
                # on the cluster only through min(3, brokers).
                replication = len(next(iter(placement.reassign.values())))
                await self._set_topic_configs(canary_topic_configs(replication))
        if placement.new_partitions:
            log.info("canary: adding partitions %s", placement.new_partitions)
            admin = AIOKafkaAdminClient(**self._kwargs)
            await admin.start()
            try:
                total = len(view.replicas) + len(placement.new_partitions)
                wanted = [list(r) for r in placement.new_partitions]
                await admin.create_partitions(
                    {topic: NewPartitions(total_count=total, new_assignments=wanted)}
                )
            finally:
                await admin.close()
            self._producer.client.force_metadata_update()

    async def _set_topic_configs(self, configs: Mapping[str, str]) -> None:
        # AlterConfigs replaces the topic's dynamic configs as a whole: the canary owns its
        # topic, and these are all the configs it sets.
        admin = AIOKafkaAdminClient(**self._kwargs)
        await admin.start()
        try:
            resource = ConfigResource(ConfigResourceType.TOPIC, self.settings.topic, dict(configs))
            responses = await admin.alter_configs([resource])
        finally:
            await admin.close()
        for response in responses:
            for error_code, message, _type, name in response.resources:
                if error_code:
                    raise for_code(error_code)(f"configs of {name}: {message}")
        log.info("canary: topic configs set to %s", dict(configs))

    async def _restore_leaders(self, view: TopicView, placement: Placement) -> None:
        stray = [
            p
            for p, owner in placement.owners.items()
            if p in view.leaders
            and view.leaders[p] != owner
            and owner in view.brokers
            and owner in view.in_sync.get(p, frozenset())
        ]
        if not stray:
            return
        node = _some_leader(view)
        results = await elect_preferred_leaders(
            self._producer.client, node, self.settings.topic, stray
        )
        self.stats.elections += 1
        log.info("canary: preferred leader elections %s", results)
        self._producer.client.force_metadata_update()

    # --- the write loop ----------------------------------------------------------------

    async def _write_loop(self) -> None:
        period = 1.0 / self.settings.rate
        topic = self.settings.topic
        while True:
            known = self._producer.client.cluster.partitions_for_topic(topic) or set()
            for partition in sorted(known & set(self._view.leaders)):
                lane = self._lanes.get(partition)
                if lane is None:
                    lane = self._lanes[partition] = Lane(
                        producer=self.producer_id, epoch=self.epoch, value=self._value
                    )
                if lane.is_writing:
                    continue
                lane.is_writing = True
                task = asyncio.create_task(self._write(partition, lane))
                self._writes.add(task)
                task.add_done_callback(self._writes.discard)
            await asyncio.sleep(period)

    async def _write(self, partition: int, lane: Lane) -> None:
        topic = self.settings.topic
        tp = TopicPartition(topic, partition)
        cluster = self._producer.client.cluster
        sent_to = cluster.leader_for_partition(tp)
        record: CanaryRecord = lane.record(time.time_ns() // 1_000_000)
        started = self._clock()
        try:
            async with asyncio.timeout(self.settings.request_timeout):
                future = await self._producer.send(
                    topic,
                    record.value,
                    partition=partition,
                    timestamp_ms=record.timestamp_ms,
                    headers=list(record.headers),
                )
                future.add_done_callback(_retrieve_outcome)
                # Shielded: a write that times out here may still complete inside the
                # producer; the retry with the same stamp is then a duplicate, not a gap.
                await asyncio.shield(future)
        except TopicAuthorizationFailedError:
            # Not the broker's fault (ACLs changed after start): said once, never counted.
            if not self._said_write_refused:
                self._said_write_refused = True
                log.error(
                    "canary: not authorized to write %s (grant WRITE to %s)",
                    topic,
                    self.principal,
                )
        except (KafkaError, TimeoutError) as exc:
            broker = sent_to if sent_to is not None and sent_to >= 0 else None
            if broker is None:
                broker = self.owners.get(partition)
            if broker is not None:
                self.stats.failed(broker)
            log.debug("canary write to %s failed: %s", tp, exc or type(exc).__name__)
        except Exception:
            # Not the broker's doing (aiokafka refusing a partition its metadata does not
            # know yet...): logged, not counted against a broker; the next tick retries.
            log.exception("canary write to %s failed", tp)
        else:
            finished = self._clock()
            leader = cluster.leader_for_partition(tp)
            lane.acknowledged(record)
            if leader is not None and leader >= 0:
                self.stats.succeeded(leader, finished - started)
                self._last_writes[partition] = LastWrite(at=finished, leader=leader)
        finally:
            lane.is_writing = False

    @property
    def next_sequences(self) -> dict[int, int]:
        """Partition -> the sequence after the last acknowledged one (for tests and logs)."""
        return {p: lane.next_seq for p, lane in self._lanes.items()}


def _retrieve_outcome(future: asyncio.Future[Any]) -> None:
    # A write abandoned by its timeout still ends inside the producer; reading its outcome
    # here keeps asyncio from logging "exception was never retrieved" for it.
    if not future.cancelled():
        future.exception()


def _some_leader(view: TopicView) -> int:
    """A broker that leads a canary partition now (so it answers), else any broker."""
    leaders = sorted({b for b in view.leaders.values() if b is not None})
    if leaders:
        return leaders[0]
    return min(view.brokers)
