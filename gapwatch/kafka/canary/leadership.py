"""Moving canary partitions: preferred-leader elections and reassignments.

aiokafka 0.14 has no ElectLeaders request, so it is defined here from Kafka's
``ElectLeadersRequest.json``/``ElectLeadersResponse.json``: version 1 (API key 43), the
first with ``election_type`` (0: preferred replica) and the last before the flexible
encoding. Kafka 2.4 through 4.x accept v1 (4.0 removed only v0); both requests were run
against 3.9.1, 4.3.1 and 4.4.0 brokers of the test bed. Reassignments use
aiokafka's own AlterPartitionReassignments v0 request. Any broker forwards both to the
active controller in KRaft, so each is sent to a broker known to be up. Checked against
aiokafka 0.14.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, Final, TypeAlias

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import for_code
from aiokafka.protocol.admin import AlterPartitionReassignmentsRequest
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Int8, Int16, Int32, Schema, String

ELECT_PREFERRED: Final = 0
# The preferred replica already leads: nothing to do, not a failure.
ELECTION_NOT_NEEDED: Final = 84
ELECTION_TIMEOUT_MS: Final = 5_000
REASSIGNMENT_TIMEOUT_MS: Final = 10_000


class ElectLeadersV1Response(Response):  # type: ignore[misc]  # aiokafka is untyped
    API_KEY = 43
    API_VERSION = 1
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        (
            "replica_election_results",
            Array(
                ("topic", String("utf-8")),
                (
                    "partition_result",
                    Array(
                        ("partition_id", Int32),
                        ("error_code", Int16),
                        ("error_message", String("utf-8")),
                    ),
                ),
            ),
        ),
    )


class ElectLeadersV1Request(RequestStruct):  # type: ignore[misc]
    API_KEY = 43
    API_VERSION = 1
    RESPONSE_TYPE = ElectLeadersV1Response
    SCHEMA = Schema(
        ("election_type", Int8),
        ("topic_partitions", Array(("topic", String("utf-8")), ("partitions", Array(Int32)))),
        ("timeout_ms", Int32),
    )


_ElectStruct: TypeAlias = ElectLeadersV1Request


class PreferredLeaderRequest(Request[_ElectStruct]):  # type: ignore[misc]
    """A preferred-replica election of some partitions of one topic."""

    API_KEY: ClassVar[int] = 43

    def __init__(self, topic: str, partitions: Sequence[int]) -> None:
        self._topic = topic
        self._partitions = list(partitions)

    def build(self, request_struct_class: type[_ElectStruct]) -> _ElectStruct:
        """The v1 request: preferred election of these partitions."""
        return request_struct_class(
            ELECT_PREFERRED, [(self._topic, self._partitions)], ELECTION_TIMEOUT_MS
        )


async def elect_preferred_leaders(
    client: AIOKafkaClient, node_id: int, topic: str, partitions: Sequence[int]
) -> dict[int, str | None]:
    """Ask (through broker ``node_id``) for the preferred replica of each partition to
    lead; returns, per partition, ``None`` if it leads now (or already did), else the
    error's name (``PREFERRED_LEADER_NOT_AVAILABLE`` while it is not in sync yet).

    Raises the Kafka error of a request-level failure (``ClusterAuthorizationFailed``
    without ALTER on the cluster).
    """
    if not partitions:
        return {}
    response = await client.send(node_id, PreferredLeaderRequest(topic, partitions))
    if response.error_code:
        raise for_code(response.error_code)(f"election of {topic} partitions {partitions}")
    results: dict[int, str | None] = {}
    for result_topic, partition_results in response.replica_election_results:
        if result_topic != topic:
            continue
        for partition, error_code, _message in partition_results:
            ok = error_code in (0, ELECTION_NOT_NEEDED)
            results[partition] = None if ok else for_code(error_code).__name__
    return results


async def reassign_partitions(
    client: AIOKafkaClient, node_id: int, topic: str, replicas: Mapping[int, Sequence[int]]
) -> None:
    """Start moving each partition of ``topic`` to its new replica list (through broker
    ``node_id``); Kafka copies the data in the background. Raises the first Kafka error."""
    if not replicas:
        return
    request = AlterPartitionReassignmentsRequest(
        timeout_ms=REASSIGNMENT_TIMEOUT_MS,
        topics=[(topic, [(p, list(r), {}) for p, r in sorted(replicas.items())], {})],
        tags={},
    )
    response = await client.send(node_id, request)
    if response.error_code:
        raise for_code(response.error_code)(response.error_message or "reassignment")
    for _name, partition_results, _tags in response.responses:
        for partition, error_code, message, _ptags in partition_results:
            if error_code:
                raise for_code(error_code)(f"reassignment of {topic}[{partition}]: {message}")
