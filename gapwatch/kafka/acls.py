"""Which Kafka ACLs a gapwatch monitor or producer needs, and the one line that names a
missing one.

Pure: the rules take names and return :class:`Acl` values; printing them as
``kafka-acls.sh`` commands or a Strimzi ``KafkaUser`` and creating them on a cluster are the
command's and :mod:`gapwatch.kafka.acl_requests`' business.

The monitor's rules (:func:`monitor_acls`), in this order (it is also the order in which
the monitor checks them at start, so the first missing one is named):

1. Each watched topic: READ (consume, list offsets, re-read after a leader change; READ
   implies DESCRIBE, which the durability audit's metadata needs) and DESCRIBE_CONFIGS (the
   start-up refusal of compacted topics, and the durability audit's reading of
   ``min.insync.replicas`` and ``unclean.leader.election.enable``). A topic pattern becomes
   PREFIXED ACLs granting READ and DESCRIBE_CONFIGS (the durability audit reads the configs
   of the topics it finds by pattern).
2. The monitor's group: READ (join, commit, read the committed checkpoint pointers;
   READ implies DESCRIBE).
3. The checkpoint topic: READ (restore) and WRITE (checkpoint rounds).
4. The gap log topic: READ (the fleet view) and WRITE (this instance's changes).
5. The producer report topic, when reports are read: READ.
6. With ``allow_create`` only: CREATE on each topic of rules 3-5, so the monitor creates
   them itself; without it an admin creates them (``gapwatch acls --apply``).

No cluster-level ACL: the broker count comes from metadata, which needs none, and since
Kafka 3.0 (KIP-679) an idempotent producer such as the gap log writer is allowed by WRITE
on any topic instead of IDEMPOTENT_WRITE on the cluster.

The canary's rules (:func:`canary_acls`; ``gapwatch monitor --canary`` needs these and the
monitor's, with the canary topic among the watched topics):

1. The canary topic: WRITE (its records), ALTER (CreatePartitions, when a broker joins),
   ALTER_CONFIGS (``min.insync.replicas`` follows the replication factor when it changes).
2. The cluster: ALTER (ElectLeaders, to restore preferred leaders, and
   AlterPartitionReassignments, to move a departed broker's partition). Without it the
   canary still writes and measures; it only cannot move leadership or partitions back.
3. With ``allow_create`` only: CREATE on the canary topic.

The rules on a mirror's source cluster (:func:`mirror_source_acls`), for the principal a
monitor of MirrorMaker 2 copies uses there (``mirror_source_config``; docs/mirroring.md):

1. Each source topic (or prefix): READ. The monitor's source readers belong to no group and
   commit nothing (:mod:`gapwatch.kafka.partition_reader`), so no group ACL; they fetch,
   list offsets (by time, for the lookups and the lag) and read metadata, and READ implies
   the DESCRIBE those last two need. Nothing is written or created on the source.

The producer's rules (:func:`producer_acls`):

1. Each stamped topic (or prefix): WRITE (WRITE implies DESCRIBE, which metadata needs).
2. The report topic, when reports are published: WRITE.
3. With ``allow_create`` only: CREATE on the report topic.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from gapwatch.kafka.settings import SecuritySettings

ANY_HOST: Final = "*"
# The one name of the CLUSTER resource.
CLUSTER_NAME: Final = "kafka-cluster"


class ResourceType(enum.Enum):
    """Kafka's resource types, with their protocol codes."""

    TOPIC = 2
    GROUP = 3
    CLUSTER = 4


class Operation(enum.Enum):
    """The ACL operations gapwatch uses, with their protocol codes."""

    READ = 3
    WRITE = 4
    CREATE = 5
    ALTER = 7
    DESCRIBE = 8
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12


class PatternType(enum.Enum):
    """How an ACL's resource name matches: the exact name, or every name it starts."""

    LITERAL = 3
    PREFIXED = 4


# ALLOW, the only permission type gapwatch grants.
PERMISSION_ALLOW: Final = 3

# What a denied operation stops the monitor from doing, as the error line says it.
_VERBS: Final = {
    Operation.READ: "read",
    Operation.WRITE: "write",
    Operation.CREATE: "create",
    Operation.DESCRIBE: "describe",
    Operation.ALTER: "alter",
    Operation.DESCRIBE_CONFIGS: "describe the configs of",
    Operation.ALTER_CONFIGS: "alter the configs of",
    Operation.IDEMPOTENT_WRITE: "write idempotently to",
}


@dataclass(frozen=True, slots=True)
class Acl:
    """One ALLOW rule: ``principal`` may do ``operation`` on a resource, from any host."""

    principal: str
    resource_type: ResourceType
    resource_name: str
    operation: Operation
    pattern_type: PatternType = PatternType.LITERAL

    @property
    def resource(self) -> str:
        """The resource as the error line names it: ``TOPIC orders``, ``GROUP g``,
        ``TOPIC prefix orders-``."""
        prefix = "prefix " if self.pattern_type is PatternType.PREFIXED else ""
        return f"{self.resource_type.name} {prefix}{self.resource_name}"


@dataclass(frozen=True, slots=True)
class MonitorAccess:
    """What a monitor reads and writes, as its configuration names it."""

    principal: str
    group_id: str
    checkpoint_topic: str
    gap_log_topic: str
    report_topic: str | None  # None: the monitor reads no producer reports
    topics: Sequence[str] = ()
    topic_prefixes: Sequence[str] = ()
    allow_create: bool = False

    @property
    def owned_topics(self) -> tuple[str, ...]:
        """The topics the monitor creates at start when they are missing."""
        owned = [self.checkpoint_topic, self.gap_log_topic]
        if self.report_topic is not None:
            owned.append(self.report_topic)
        return tuple(owned)


@dataclass(frozen=True, slots=True)
class ProducerAccess:
    """What a stamped producer writes."""

    principal: str
    report_topic: str | None  # None: the producer publishes no reports
    topics: Sequence[str] = ()
    topic_prefixes: Sequence[str] = ()
    allow_create: bool = False


def monitor_acls(access: MonitorAccess) -> list[Acl]:
    """The ACLs a monitor needs, in the order of the rules in the module docstring."""
    who = access.principal
    acls: list[Acl] = []
    for topic in access.topics:  # rule 1
        acls.append(_topic(who, topic, Operation.READ))
        acls.append(_topic(who, topic, Operation.DESCRIBE_CONFIGS))
    for prefix in access.topic_prefixes:
        acls.append(_topic(who, prefix, Operation.READ, PatternType.PREFIXED))
        acls.append(_topic(who, prefix, Operation.DESCRIBE_CONFIGS, PatternType.PREFIXED))
    acls.append(Acl(who, ResourceType.GROUP, access.group_id, Operation.READ))  # rule 2
    for topic in (access.checkpoint_topic, access.gap_log_topic):  # rules 3, 4
        acls.append(_topic(who, topic, Operation.READ))
        acls.append(_topic(who, topic, Operation.WRITE))
    if access.report_topic is not None:  # rule 5
        acls.append(_topic(who, access.report_topic, Operation.READ))
    if access.allow_create:  # rule 6
        acls.extend(_topic(who, topic, Operation.CREATE) for topic in access.owned_topics)
    return _unique(acls)


@dataclass(frozen=True, slots=True)
class CanaryAccess:
    """What the canary writes and changes."""

    principal: str
    topic: str
    allow_create: bool = False


def canary_acls(access: CanaryAccess) -> list[Acl]:
    """The ACLs the canary needs (rules in the module docstring)."""
    who = access.principal
    acls = [
        _topic(who, access.topic, Operation.WRITE),  # rule 1
        _topic(who, access.topic, Operation.ALTER),
        _topic(who, access.topic, Operation.ALTER_CONFIGS),
        Acl(who, ResourceType.CLUSTER, CLUSTER_NAME, Operation.ALTER),  # rule 2
    ]
    if access.allow_create:  # rule 3
        acls.append(_topic(who, access.topic, Operation.CREATE))
    return acls


@dataclass(frozen=True, slots=True)
class MirrorSourceAccess:
    """What a monitor of mirror copies reads on the mirror's source cluster."""

    principal: str
    topics: Sequence[str] = ()  # the source topics: ``orders`` for the copy ``east.orders``
    topic_prefixes: Sequence[str] = ()


def mirror_source_acls(access: MirrorSourceAccess) -> list[Acl]:
    """The ACLs a monitor needs on a mirror's source cluster (rules in the module
    docstring): read-only."""
    who = access.principal
    acls = [_topic(who, topic, Operation.READ) for topic in access.topics]
    acls += [
        _topic(who, prefix, Operation.READ, PatternType.PREFIXED)
        for prefix in access.topic_prefixes
    ]
    return _unique(acls)


def producer_acls(access: ProducerAccess) -> list[Acl]:
    """The ACLs a stamped producer needs (rules in the module docstring)."""
    who = access.principal
    acls = [_topic(who, topic, Operation.WRITE) for topic in access.topics]  # rule 1
    acls += [
        _topic(who, prefix, Operation.WRITE, PatternType.PREFIXED)
        for prefix in access.topic_prefixes
    ]
    if access.report_topic is not None:  # rule 2
        acls.append(_topic(who, access.report_topic, Operation.WRITE))
        if access.allow_create:  # rule 3
            acls.append(_topic(who, access.report_topic, Operation.CREATE))
    return _unique(acls)


def denied_line(acl: Acl) -> str:
    """The one line a monitor stops with when ``acl`` is missing, e.g. ``not authorized to
    read GROUP g: grant READ on GROUP g to User:mon``."""
    return (
        f"not authorized to {_VERBS[acl.operation]} {acl.resource}: "
        f"grant {acl.operation.name} on {acl.resource} to {acl.principal}"
    )


def first_missing(
    acls: Iterable[Acl],
    *,
    topic_ops: Mapping[str, int | None],
    group_ops: Mapping[str, int],
) -> Acl | None:
    """The first of ``acls`` the cluster's answers do not grant, or ``None``.

    ``topic_ops`` and ``group_ops`` hold Kafka's bit fields of authorized operations per
    topic and group (0 when the client may not even describe it); a topic mapped to
    ``None`` does not exist and is skipped (creating it is checked when it is created).
    PREFIXED ACLs are skipped: no topic to ask about is known before one matches.
    """
    for acl in acls:
        if acl.pattern_type is not PatternType.LITERAL:
            continue
        granted: int | None
        if acl.resource_type is ResourceType.TOPIC:
            granted = topic_ops.get(acl.resource_name)
        elif acl.resource_type is ResourceType.GROUP:
            granted = group_ops.get(acl.resource_name, 0)
        else:
            continue
        if granted is not None and not is_granted(acl, granted):
            return acl
    return None


def is_granted(acl: Acl, authorized_operations: int) -> bool:
    """Whether ``acl``'s operation is in a bit field of authorized operations, as Kafka
    returns it for a topic or group (bit ``1 << operation code``)."""
    return bool(authorized_operations & (1 << acl.operation.value))


def principal_of(security: SecuritySettings) -> str:
    """The principal Kafka's default principal builder gives a client with ``security``.

    SASL: ``User:`` and the user name (a token's subject for OAUTHBEARER). A TLS client
    certificate: its subject's DN unless the broker maps it (``ssl.principal.mapping.rules``),
    which the client cannot know, so the line says where to look. Otherwise
    ``User:ANONYMOUS``.
    """
    if security.uses_sasl:
        if security.sasl_username:
            return f"User:{security.sasl_username}"
        return "the principal of the SASL token's subject"  # OAUTHBEARER: User:<sub>
    if security.uses_ssl and security.ssl_certfile is not None:
        return f"the principal of the certificate {security.ssl_certfile}"
    return "User:ANONYMOUS"


def _topic(
    principal: str, name: str, operation: Operation, pattern: PatternType = PatternType.LITERAL
) -> Acl:
    return Acl(principal, ResourceType.TOPIC, name, operation, pattern)


def _unique(acls: Iterable[Acl]) -> list[Acl]:
    # A watched topic may also be named as gapwatch's own (tests do): one ACL each.
    return list(dict.fromkeys(acls))
