"""MirrorMaker 2's topic naming: which source topic a target topic is a copy of.

MM2's ``DefaultReplicationPolicy`` names the copy of ``orders`` from the cluster aliased
``east`` ``east.orders`` (separator ``.``); ``IdentityReplicationPolicy`` keeps the name.
Pure string rules, used by the monitor's configuration and its mirror components.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ReplicationPolicy = Literal["default", "identity"]
REPLICATION_POLICIES: tuple[ReplicationPolicy, ...] = ("default", "identity")
SEPARATOR = "."


@dataclass(frozen=True, slots=True)
class MirroredTopic:
    """A target topic that is a copy, and what it is a copy of."""

    topic: str
    source_cluster: str
    source_topic: str


def source_of(
    topic: str, *, aliases: tuple[str, ...], policy: ReplicationPolicy
) -> MirroredTopic | None:
    """The source of target ``topic`` under ``policy``, or ``None`` if it is no copy.

    With ``default`` the prefix names the source cluster (the longest matching alias wins,
    so ``eu`` and ``eu.west`` can both be aliases). With ``identity`` the name says nothing
    about the cluster, so exactly one source alias must be configured; every watched topic
    is then a copy from it.
    """
    if policy == "identity":
        if len(aliases) != 1:
            return None
        return MirroredTopic(topic, aliases[0], topic)
    for alias in sorted(aliases, key=len, reverse=True):
        prefix = alias + SEPARATOR
        if topic.startswith(prefix) and len(topic) > len(prefix):
            return MirroredTopic(topic, alias, topic[len(prefix) :])
    return None
