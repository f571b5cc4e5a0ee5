"""The admin requests the mirror test bed makes: forgetting MirrorMaker's copied offsets,
moving a source partition's log start, and asking whether a topic exists.

Like :mod:`._admin`, every helper opens and closes its own client and inspects the error
codes aiokafka hands back without raising.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import TopicPartition
from aiokafka.admin import RecordsToDelete
from aiokafka.errors import KafkaError, for_code

from gapwatch.testing._admin import POLL_INTERVAL, admin_client
from gapwatch.testing._errors import TopicError

# Kafka's UNKNOWN_TOPIC_OR_PARTITION: the topic is not (or no longer) there.
_UNKNOWN_TOPIC = 3


async def topic_exists(bootstrap_servers: str, topic: str) -> bool:
    """Whether the cluster's metadata lists ``topic`` (with partitions) right now."""
    async with admin_client(bootstrap_servers) as admin:
        described = await admin.describe_topics([topic])
    for entry in described:
        if entry["topic"] == topic:
            return bool(entry["error_code"] == 0 and entry["partitions"])
    return False


async def delete_topic(bootstrap_servers: str, topic: str, *, timeout_s: float = 30.0) -> bool:
    """Delete ``topic`` and wait until metadata no longer lists it.

    Returns whether there was a topic to delete; any other error is a :class:`TopicError`.
    """
    async with admin_client(bootstrap_servers, request_timeout_ms=int(timeout_s * 1000)) as admin:
        response = await admin.delete_topics([topic], timeout_ms=int(timeout_s * 1000))
    existed = True
    # Each entry is (topic, error_code[, error_message]) depending on the response version.
    for entry in response.topic_error_codes:
        code = entry[1]
        if code == _UNKNOWN_TOPIC:
            existed = False
        elif code != 0:
            raise TopicError(f"deleting topic {topic!r} failed: {for_code(code).__name__}")
    deadline = time.monotonic() + timeout_s
    while await topic_exists(bootstrap_servers, topic):
        if time.monotonic() >= deadline:
            raise TopicError(f"topic {topic!r} still listed {timeout_s:.0f} s after deletion")
        await asyncio.sleep(POLL_INTERVAL)
    return existed


async def delete_records_before(
    bootstrap_servers: str, topic: str, partition: int, offset: int, *, timeout_s: float = 30.0
) -> int:
    """Move the partition's log start to ``offset`` (records below it are deleted, as
    retention would) and return the new log start offset the broker reports."""
    tp = TopicPartition(topic, partition)
    try:
        async with admin_client(
            bootstrap_servers, request_timeout_ms=int(timeout_s * 1000)
        ) as admin:
            low_watermarks = await admin.delete_records(
                {tp: RecordsToDelete(offset)}, timeout_ms=int(timeout_s * 1000)
            )
    except KafkaError as exc:
        raise TopicError(
            f"deleting records of {topic}-{partition} below {offset}: {exc!r}"
        ) from exc
    return int(low_watermarks[tp])
