"""gapwatch's own topics and the admin work done once at start: create them, refuse
compacted watched topics.

Needs the ACLs of :mod:`gapwatch.kafka.acls` (DescribeConfigs on the watched topics; Create
on gapwatch's own topics only while they are missing). Callers bound every call with
``asyncio.timeout``: a monitor must fail loudly at start, not hang.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

from gapwatch.errors import GapwatchError
from gapwatch.kafka.startup_errors import describe_kafka_error, name_kafka_error

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS: Final = TopicAlreadyExistsError.errno
TOPIC_AUTHORIZATION_FAILED: Final = TopicAuthorizationFailedError.errno

# The largest checkpoint value the monitor writes. A snapshot is ~5 KB for a full ring
# and ~0.5 MB for 100,000 streams in one partition (up to ~1 MB with long producer ids):
# Kafka's 1 MB default would be too close, so the topic and the producer are set for
# this explicitly. Larger snapshots are not written (logged and
# counted as gapwatch_checkpoints_too_large_total); the partition then restarts from its
# previous checkpoint.
CHECKPOINT_MAX_BYTES = 8 * 1024 * 1024
# Room for the record batch and record headers around the value (key, offsets, CRC).
CHECKPOINT_BATCH_OVERHEAD = 64 * 1024

# The checkpoint topic keeps one record per (group, topic, partition) key. Short segments
# and an eager cleaner keep the uncompacted tail small, so restoring (which may scan from
# the committed checkpoint to the end of its partition) reads seconds, not days, of data.
CHECKPOINT_TOPIC_CONFIGS: Mapping[str, str] = {
    "cleanup.policy": "compact",
    "max.message.bytes": str(CHECKPOINT_MAX_BYTES + CHECKPOINT_BATCH_OVERHEAD),
    "segment.ms": str(10 * 60 * 1000),
    "min.cleanable.dirty.ratio": "0.1",
    "delete.retention.ms": str(60 * 60 * 1000),
}
CHECKPOINT_TOPIC_PARTITIONS = 6

# The producer report topic, as producers create it by default and as the monitor creates
# it when it starts first. Compaction keeps the latest report of every stream; deletion
# after a week stops the topic from growing forever as producers restart (each epoch is a
# new set of keys). A stream that is still written to is re-reported every interval, so it
# never expires.
REPORT_TOPIC: Final = "__gapwatch_producer_reports"
REPORT_TOPIC_PARTITIONS: Final = 3
REPORT_TOPIC_CONFIGS: Final[Mapping[str, str]] = MappingProxyType(
    {"cleanup.policy": "compact,delete", "retention.ms": str(7 * 24 * 3600 * 1000)}
)


class CompactedTopicError(GapwatchError):
    """A watched topic is compacted and the user did not opt in."""


class TopicSetupError(GapwatchError):
    """gapwatch's own topic could not be created or described."""


class TopicCreationDeniedError(TopicSetupError):
    """The cluster's ACLs do not let this client create a missing topic."""

    def __init__(self, topic: str, message: str) -> None:
        super().__init__(message)
        self.topic = topic


async def broker_count(admin: AIOKafkaAdminClient) -> int:
    """How many brokers the cluster metadata lists."""
    cluster = await admin.describe_cluster()
    return len(cluster["brokers"])


async def ensure_topic(
    admin: AIOKafkaAdminClient,
    name: str,
    *,
    partitions: int,
    configs: Mapping[str, str],
) -> bool:
    """Create ``name`` with replication factor min(3, brokers) unless it exists.

    Returns True if this call created it. A replication factor of 3 survives one broker
    loss with ``min.insync.replicas=2``; smaller clusters (tests, demos) get what they have.
    """
    replication = min(3, await broker_count(admin))
    response = await admin.create_topics(
        [NewTopic(name, partitions, replication, topic_configs=dict(configs))]
    )
    for topic_error in response.topic_errors:
        topic, code = topic_error[0], topic_error[1]
        if topic != name or code == 0:
            continue
        if code == TOPIC_ALREADY_EXISTS:
            return False
        message = topic_error[2] if len(topic_error) > 2 else ""
        line = f"cannot create topic {name!r}: {explain_code(code, message)}"
        if code == TOPIC_AUTHORIZATION_FAILED:
            raise TopicCreationDeniedError(name, line)
        raise TopicSetupError(line)
    log.info("created topic %s (replication factor %d)", name, replication)
    await wait_for_leaders(admin, name, partitions)
    return True


async def wait_for_leaders(admin: AIOKafkaAdminClient, name: str, partitions: int) -> None:
    """Return once metadata lists ``partitions`` partitions of ``name``, each with a leader.

    A topic just created is missing from the brokers' metadata for a moment (seconds on a
    busy cluster). A client started in that window, such as the gap log reader, re-asks
    for metadata in a tight loop and logs an error each time, thousands in a few seconds.
    The caller bounds the wait with its own timeout.
    """
    delay = 0.02
    while True:
        for entry in await admin.describe_topics([name]):
            if entry.get("topic") != name or entry.get("error_code"):
                continue
            leaders = [p for p in entry.get("partitions", ()) if p.get("leader", -1) >= 0]
            if len(leaders) >= partitions:
                return
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


async def cleanup_policies(admin: AIOKafkaAdminClient, topics: Iterable[str]) -> dict[str, str]:
    """``cleanup.policy`` of each topic, read with DescribeConfigs."""
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, topic, configs={"cleanup.policy": None})
        for topic in topics
    ]
    if not resources:
        return {}
    responses = await admin.describe_configs(resources)
    policies: dict[str, str] = {}
    for response in responses:
        for error_code, error_message, _type, name, entries, *_ in response.resources:
            if error_code == UnknownTopicOrPartitionError.errno:
                raise TopicSetupError(
                    f"topic {name!r} does not exist ({name_kafka_error(error_code)})"
                )
            if error_code:
                raise TopicSetupError(
                    f"cannot describe topic {name!r}: {explain_code(error_code, error_message)}"
                )
            for entry in entries:
                if entry[0] == "cleanup.policy":
                    policies[name] = entry[1] or ""
    return policies


def explain_code(code: int, message: str | None) -> str:
    """A Kafka error code of a response by its name, with the broker's message if it has one
    (otherwise Kafka's description of the error)."""
    if message:
        return f"{name_kafka_error(code)} ({message})"
    return describe_kafka_error(code)


def refuse_compacted(policies: Mapping[str, str], *, allow_compacted: bool) -> list[str]:
    """Names of compacted topics; raises :class:`CompactedTopicError` unless allowed.

    Compaction deletes older records of a key by design, so their sequences would look
    lost; watching such a topic pages people for nothing.
    """
    compacted = sorted(t for t, policy in policies.items() if "compact" in policy.split(","))
    if compacted and not allow_compacted:
        names = ", ".join(compacted)
        raise CompactedTopicError(
            f"refusing to watch compacted topic(s) {names}: compaction removes records by "
            "design, which gapwatch would report as loss. Pass --allow-compacted to watch "
            "them anyway."
        )
    for topic in compacted:
        log.warning("watching compacted topic %s: expect gaps where records were compacted", topic)
    return compacted
