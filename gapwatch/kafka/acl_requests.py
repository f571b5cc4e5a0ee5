"""Kafka's ACL and authorized-operations requests, sent through aiokafka's client.

aiokafka 0.14's admin client has no ACL methods, and its Metadata request stops at v5,
before ``include_topic_authorized_operations`` (v8). This module sends CreateAcls with
aiokafka's own request classes, and Metadata v8 with a request and response defined here
from Kafka's ``MetadataRequest.json``/``MetadataResponse.json`` (v8 is the last
non-flexible version; Kafka 2.3 and every 3.x and 4.x broker accept it). Checked against
aiokafka 0.14.

:func:`require_granted` is the monitor's start-up check: it asks the cluster which
operations the client may do on each topic and group it will use and raises one line
naming the first ACL that is missing (:func:`gapwatch.kafka.acls.denied_line`), instead of
the client failing later in a retry loop or without saying which permission it lacks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Final, TypeAlias

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
    for_code,
)
from aiokafka.protocol.admin import CreateAclsRequest, DescribeGroupsResponse_v3
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Int16, Int32, Schema, String

from gapwatch.errors import KafkaAuthorizationError, KafkaStartupError
from gapwatch.kafka.acls import (
    PERMISSION_ALLOW,
    Acl,
    PatternType,
    ResourceType,
    denied_line,
    first_missing,
)
from gapwatch.kafka.startup_errors import describe_kafka_error

TOPIC_AUTHORIZATION_FAILED: Final = TopicAuthorizationFailedError.errno
GROUP_AUTHORIZATION_FAILED: Final = GroupAuthorizationFailedError.errno
UNKNOWN_TOPIC_OR_PARTITION: Final = UnknownTopicOrPartitionError.errno
NOTHING_GRANTED: Final = 0
GROUP_COORDINATOR: Final = 0  # FindCoordinator's key type of consumer groups


class MetadataV8Response(Response):  # type: ignore[misc]  # aiokafka is untyped
    API_KEY = 3
    API_VERSION = 8
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "brokers",
            Array(
                ("node_id", Int32),
                ("host", String("utf-8")),
                ("port", Int32),
                ("rack", String("utf-8")),
            ),
        ),
        ("cluster_id", String("utf-8")),
        ("controller_id", Int32),
        (
            "topics",
            Array(
                ("error_code", Int16),
                ("topic", String("utf-8")),
                ("is_internal", Boolean),
                (
                    "partitions",
                    Array(
                        ("error_code", Int16),
                        ("partition", Int32),
                        ("leader", Int32),
                        ("leader_epoch", Int32),
                        ("replicas", Array(Int32)),
                        ("isr", Array(Int32)),
                        ("offline_replicas", Array(Int32)),
                    ),
                ),
                ("topic_authorized_operations", Int32),
            ),
        ),
        ("cluster_authorized_operations", Int32),
    )


class MetadataV8Request(RequestStruct):  # type: ignore[misc]
    API_KEY = 3
    API_VERSION = 8
    RESPONSE_TYPE = MetadataV8Response
    SCHEMA = Schema(
        ("topics", Array(String("utf-8"))),
        ("allow_auto_topic_creation", Boolean),
        ("include_cluster_authorized_operations", Boolean),
        ("include_topic_authorized_operations", Boolean),
    )


_MetadataStruct: TypeAlias = MetadataV8Request


class TopicOperationsRequest(Request[_MetadataStruct]):  # type: ignore[misc]
    """Metadata of some topics with the operations the client may do on each; never creates
    a topic (a broker with ``auto.create.topics.enable`` would, with default settings)."""

    API_KEY: ClassVar[int] = 3

    def __init__(self, topics: Sequence[str]) -> None:
        self._topics = list(topics)

    def build(self, request_struct_class: type[_MetadataStruct]) -> _MetadataStruct:
        """The v8 request: these topics, no auto-creation, topic operations included."""
        return request_struct_class(self._topics, False, False, True)


class GroupsV3Request(RequestStruct):  # type: ignore[misc]
    # aiokafka 0.14's DescribeGroupsRequest_v3 names the v2 response, which has no
    # authorized_operations: its own v3 response is the right one.
    API_KEY = 15
    API_VERSION = 3
    RESPONSE_TYPE = DescribeGroupsResponse_v3
    SCHEMA = Schema(("groups", Array(String("utf-8"))), ("include_authorized_operations", Boolean))


class GroupOperationsRequest(Request[GroupsV3Request]):  # type: ignore[misc]
    """DescribeGroups v3 of one group, with the operations the client may do on it."""

    API_KEY: ClassVar[int] = 15

    def __init__(self, group_id: str) -> None:
        self._group_id = group_id

    def build(self, request_struct_class: type[GroupsV3Request]) -> GroupsV3Request:
        """The v3 request: this group, authorized operations included."""
        return request_struct_class([self._group_id], True)


async def topic_operations(client: AIOKafkaClient, topics: Iterable[str]) -> dict[str, int | None]:
    """For each topic, the bit field of operations the client may do on it (0 if it may not
    even describe it), or ``None`` if it does not exist."""
    names = sorted(set(topics))
    if not names:
        return {}
    response = await client.send(client.get_random_node(), TopicOperationsRequest(names))
    found: dict[str, int | None] = {}
    for error_code, topic, _internal, _partitions, operations in response.topics:
        if error_code == UNKNOWN_TOPIC_OR_PARTITION:
            found[topic] = None
        elif error_code == TOPIC_AUTHORIZATION_FAILED:
            found[topic] = NOTHING_GRANTED
        elif error_code:
            raise for_code(error_code)(f"metadata of topic {topic!r}")
        else:
            found[topic] = operations
    return found


async def group_operations(client: AIOKafkaClient, group_id: str) -> int:
    """The bit field of operations the client may do on ``group_id`` (0 if it may not even
    describe it); a group that does not exist yet is described too.

    Retries while the cluster answers with a retriable error: a fresh cluster has no group
    coordinator until ``__consumer_offsets`` is ready, and the consumer would wait for it
    too. The caller bounds the wait.
    """
    delay = 0.05
    while True:
        try:
            return await _described_group_operations(client, group_id)
        except KafkaError as exc:
            if not exc.retriable:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def _described_group_operations(client: AIOKafkaClient, group_id: str) -> int:
    try:
        coordinator = await client.coordinator_lookup(GROUP_COORDINATOR, group_id)
    except GroupAuthorizationFailedError:
        return NOTHING_GRANTED  # FindCoordinator needs DESCRIBE on the group
    response = await client.send(coordinator, GroupOperationsRequest(group_id))
    for error_code, group, *_rest, operations in response.groups:
        if group != group_id:
            continue
        if error_code == GROUP_AUTHORIZATION_FAILED:
            return NOTHING_GRANTED
        if error_code:
            raise for_code(error_code)(f"description of group {group_id!r}")
        return int(operations)
    return NOTHING_GRANTED


async def require_granted(client_kwargs: Mapping[str, Any], acls: Sequence[Acl]) -> set[str]:
    """Raise :class:`KafkaAuthorizationError` naming the first of ``acls`` the client lacks.

    Returns the topics among ``acls`` that exist. A missing topic is not checked here (the
    monitor creates it next, and a refused creation names CREATE); neither are prefixed
    ACLs (there is no topic to ask about before one matches).
    """
    client = AIOKafkaClient(**client_kwargs)
    try:
        await client.bootstrap()
        topics = [
            a.resource_name
            for a in acls
            if a.resource_type is ResourceType.TOPIC and a.pattern_type is PatternType.LITERAL
        ]
        topic_ops = await topic_operations(client, topics)
        group_ops: dict[str, int] = {}
        groups = {a.resource_name for a in acls if a.resource_type is ResourceType.GROUP}
        for group in sorted(groups):
            group_ops[group] = await group_operations(client, group)
    finally:
        await client.close()
    missing = first_missing(acls, topic_ops=topic_ops, group_ops=group_ops)
    if missing is not None:
        raise KafkaAuthorizationError(denied_line(missing))
    return {topic for topic, ops in topic_ops.items() if ops is not None}


async def create_acls(client: AIOKafkaClient, acls: Sequence[Acl]) -> None:
    """Create ``acls`` on the cluster (an existing identical ACL is not an error).

    Any broker forwards CreateAcls to the controller. aiokafka's request class carries one
    ACL, so there is one request per ACL (a dozen for a monitor).
    """
    for acl in acls:
        request = CreateAclsRequest(
            resource_type=acl.resource_type.value,
            resource_name=acl.resource_name,
            resource_pattern_type_filter=acl.pattern_type.value,
            principal=acl.principal,
            host="*",
            operation=acl.operation.value,
            permission_type=PERMISSION_ALLOW,
        )
        response = await client.send(client.get_random_node(), request)
        for error_code, error_message in response.creation_responses:
            if error_code:
                raise KafkaStartupError(
                    f"cannot create ACL {acl.operation.name} on {acl.resource} for "
                    f"{acl.principal}: {describe_kafka_error(error_code)}"
                    + (f" ({error_message})" if error_message else "")
                )
