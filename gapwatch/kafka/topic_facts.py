"""Reading what the durability audit judges: topic configs, partition placement, racks.

Two requests through one aiokafka client, both metadata and configuration only (no record is
read): Metadata (replicas, in-sync replicas and leader of every partition, each broker's
rack) and DescribeConfigs of the topics (``min.insync.replicas`` and
``unclean.leader.election.enable``, effective values: the topic's own setting, else the
broker's, else Kafka's default, with where each came from). The rules themselves are pure,
in :mod:`gapwatch.core.durability`.

aiokafka's admin client asks Metadata with ``allow_auto_topic_creation`` on, which creates a
missing topic on brokers with ``auto.create.topics.enable``: an audit of a misspelt name
must not create it, so the Metadata request here is built with it off. Checked against
aiokafka 0.14.

Needs DESCRIBE (implied by READ) and DESCRIBE_CONFIGS on each topic; a refusal raises
:class:`~gapwatch.errors.KafkaAuthorizationError` with the one line naming the ACL
(:func:`gapwatch.kafka.acls.denied_line`), a missing topic :class:`TopicFactsError`, an
unreachable cluster :class:`~gapwatch.errors.KafkaStartupError` (one line, as every client).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    NodeNotReadyError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)
from aiokafka.protocol.admin import DescribeConfigsRequest
from aiokafka.protocol.metadata import MetadataRequest

from gapwatch.core.durability import PartitionPlacement, TopicSettings
from gapwatch.errors import GapwatchError, KafkaAuthorizationError
from gapwatch.kafka.acls import Acl, Operation, ResourceType, denied_line
from gapwatch.kafka.startup_errors import describe_kafka_error, explained_start

MIN_ISR: Final = "min.insync.replicas"
UNCLEAN: Final = "unclean.leader.election.enable"
AUDITED_CONFIGS: Final = (MIN_ISR, UNCLEAN)
TOPIC_RESOURCE: Final = 2  # DescribeConfigs' resource type of topics
UNKNOWN_TOPIC: Final = UnknownTopicOrPartitionError.errno
TOPIC_DENIED: Final = TopicAuthorizationFailedError.errno

# DescribeConfigs' config_source codes (v1+), as /topics names them.
_SOURCES: Final[Mapping[int, str]] = {
    1: "topic",
    2: "broker",
    3: "cluster",
    4: "broker file",
    5: "kafka default",
}
# Kafka's own defaults, used only if a broker leaves a value out of its answer.
_KAFKA_DEFAULTS: Final[Mapping[str, str]] = {MIN_ISR: "1", UNCLEAN: "false"}
_UNREACHABLE = (KafkaConnectionError, NodeNotReadyError, RequestTimedOutError)


class TopicFactsError(GapwatchError):
    """The facts of a topic could not be read (it does not exist, or Kafka refused)."""


class TopicFactsReader:
    """Reads :class:`~gapwatch.core.durability.TopicSettings` of topics; one client, reused.

    ``principal`` names who is refused in the error line when an ACL is missing.
    """

    def __init__(self, client_kwargs: Mapping[str, Any], *, principal: str) -> None:
        self._kwargs = dict(client_kwargs)
        self._principal = principal
        self._client: AIOKafkaClient | None = None

    async def start(self) -> None:
        """Connect to the cluster (bootstrap); a failed start may be tried again."""
        # Made here, not in __init__: aiokafka's client needs the running event loop.
        client = AIOKafkaClient(**self._kwargs)
        try:
            # A cluster that cannot be reached is said in one line, as every client says it.
            async with explained_start(self._kwargs):
                await client.bootstrap()
        except BaseException:
            await client.close()
            raise
        self._client = client

    async def close(self) -> None:
        """Disconnect."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def matching_topics(self, pattern: str) -> list[str]:
        """The cluster's non-internal topics whose names match ``pattern`` as the
        consumer's subscription does (from the start of the name), sorted."""
        response = await self._send(MetadataRequest(None, False))
        regex = re.compile(pattern)
        return sorted(
            topic["topic"]
            for topic in response.to_object()["topics"]
            if not topic.get("is_internal") and not topic["error_code"]
            if regex.match(topic["topic"])
        )

    async def read(self, topics: Sequence[str]) -> dict[str, TopicSettings]:
        """The settings and placement of each of ``topics``.

        Raises :class:`TopicFactsError` naming a topic that does not exist and
        :class:`~gapwatch.errors.KafkaAuthorizationError` naming a missing ACL.
        """
        names = sorted(set(topics))
        if not names:
            return {}
        metadata = (await self._send(MetadataRequest(names, False))).to_object()
        racks: dict[int, str | None] = {
            broker["node_id"]: broker.get("rack") or None for broker in metadata["brokers"]
        }
        placements: dict[str, tuple[PartitionPlacement, ...]] = {}
        for topic in metadata["topics"]:
            name = topic["topic"]
            self._raise_for(topic["error_code"], name, Operation.DESCRIBE)
            placements[name] = tuple(
                sorted(
                    (
                        PartitionPlacement(
                            partition=p["partition"],
                            leader=p["leader"],
                            replicas=tuple(p["replicas"]),
                            isr=tuple(p["isr"]),
                        )
                        for p in topic["partitions"]
                    ),
                    key=lambda placement: placement.partition,
                )
            )
        unanswered = [name for name in names if name not in placements]
        if unanswered:
            raise TopicFactsError(f"the cluster's metadata left out topics {unanswered}")
        configs = await self._configs(names)
        result: dict[str, TopicSettings] = {}
        for name in names:
            values, sources = configs[name]
            result[name] = TopicSettings(
                topic=name,
                min_insync_replicas=_int_value(name, MIN_ISR, values[MIN_ISR]),
                unclean_leader_election=values[UNCLEAN].strip().lower() == "true",
                partitions=placements[name],
                racks=racks,
                config_sources=sources,
            )
        return result

    async def _configs(
        self, names: Sequence[str]
    ) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
        request = DescribeConfigsRequest(
            [(TOPIC_RESOURCE, name, list(AUDITED_CONFIGS)) for name in names], False
        )
        response = (await self._send(request)).to_object()
        found: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
        for resource in response["resources"]:
            name = resource["resource_name"]
            self._raise_for(
                resource["error_code"],
                name,
                Operation.DESCRIBE_CONFIGS,
                message=resource.get("error_message"),
            )
            values = dict(_KAFKA_DEFAULTS)
            sources = dict.fromkeys(AUDITED_CONFIGS, "kafka default")
            for entry in resource["config_entries"]:
                key = entry["config_names"]
                if key in values and entry["config_value"] is not None:
                    values[key] = entry["config_value"]
                    # v0 answers say only whether the value is a default.
                    source = entry.get("config_source")
                    if source is None:
                        source = 5 if entry.get("is_default") else 1
                    sources[key] = _SOURCES.get(source, "broker")
            found[name] = (values, sources)
        missing = [name for name in names if name not in found]
        if missing:
            raise TopicFactsError(f"the cluster did not describe the configs of {missing}")
        return found

    def _raise_for(
        self, code: int, topic: str, operation: Operation, *, message: str | None = None
    ) -> None:
        if not code:
            return
        if code == UNKNOWN_TOPIC:
            raise TopicFactsError(f"topic {topic!r} does not exist")
        if code == TOPIC_DENIED:
            acl = Acl(self._principal, ResourceType.TOPIC, topic, operation)
            raise KafkaAuthorizationError(denied_line(acl))
        why = f"{describe_kafka_error(code)}" + (f" ({message})" if message else "")
        raise TopicFactsError(f"cannot read the settings of topic {topic!r}: {why}")

    async def _send(self, request: Any) -> Any:
        """Send ``request`` to any reachable broker: a stopped or paused one must not stop
        the audit while others answer."""
        client = self._client
        if client is None:
            raise TopicFactsError("start() the reader first")
        nodes = [broker.nodeId for broker in client.cluster.brokers()]
        random.shuffle(nodes)
        last: Exception | None = None
        for node in nodes:
            try:
                return await client.send(node, request)
            except _UNREACHABLE as exc:
                last = exc
            except KafkaError as exc:
                raise TopicFactsError(f"Kafka refused the request: {exc!r}") from exc
        raise TopicFactsError(f"no broker answered: {last!r}")


def _int_value(topic: str, key: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise TopicFactsError(f"topic {topic!r} has {key}={raw!r}, not a number") from None
