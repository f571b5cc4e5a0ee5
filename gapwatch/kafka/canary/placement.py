"""Where the canary topic's partitions should live: pure, brokers and assignment in,
wanted changes out.

Rules, in order (each a branch of :func:`plan_placement`, named by the tests):

P1. The replication factor is ``min(3, number of brokers)``; ``min.insync.replicas`` is 2,
    or 1 when there is a single broker (one replica cannot make two in sync).
P2. Every broker should be the preferred leader (first replica) of exactly one partition,
    its own: a partition keeps the broker it already prefers while that broker is in the
    cluster and no earlier partition claimed it.
P3. A partition whose replicas name a broker that left, repeat a broker, or number other
    than the replication factor, is reassigned: its preferred leader first, then the
    brokers following it in id order (a ring), so followers spread evenly.
P4. A broker with no partition of its own takes over a partition whose preferred leader
    left (the lowest such partition first), else a new partition is added for it.
P5. Partitions are never removed (Kafka cannot); one that no broker owns is a spare: it
    keeps its replicas if they are sound, else it is reassigned to the ring of a broker
    chosen by its number, so its replicas live on brokers that exist. Spares are written
    like any partition but count for no broker's availability.

Which brokers "left" is the caller's decision: a broker paused or restarting drops out of
the metadata for a while, and moving its data for that would be wrong, so the runner only
treats a broker as gone after it has been missing for a configured time.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

MAX_REPLICATION_FACTOR: Final = 3
MIN_INSYNC_REPLICAS: Final = 2


def replication_factor(broker_count: int) -> int:
    """P1: three replicas, or as many as there are brokers."""
    return max(1, min(MAX_REPLICATION_FACTOR, broker_count))


def min_insync_replicas(broker_count: int) -> int:
    """P1: two in sync, or one on a one-broker cluster."""
    return min(MIN_INSYNC_REPLICAS, replication_factor(broker_count))


def ring_from(leader: int, brokers: Sequence[int], count: int) -> tuple[int, ...]:
    """``leader`` then the next ``count - 1`` brokers after it in id order (P3)."""
    ordered = sorted(brokers)
    start = ordered.index(leader)
    return tuple(ordered[(start + i) % len(ordered)] for i in range(count))


@dataclass(frozen=True, slots=True)
class Placement:
    """What to change so the canary topic matches the brokers.

    ``owners``: partition -> the broker it belongs to (its wanted preferred leader), each
    broker once; ``spares``: partition -> wanted preferred leader of the partitions no
    broker owns (P5); ``reassign``: partition -> the full replica list it should get;
    ``new_partitions``: replica lists of partitions to add, in order after the existing ones.
    """

    owners: Mapping[int, int] = field(default_factory=dict)
    spares: Mapping[int, int] = field(default_factory=dict)
    reassign: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    new_partitions: tuple[tuple[int, ...], ...] = ()

    @property
    def is_settled(self) -> bool:
        """Whether nothing needs to change."""
        return not self.reassign and not self.new_partitions


def plan_placement(brokers: Collection[int], assignment: Mapping[int, Sequence[int]]) -> Placement:
    """The changes that give each of ``brokers`` a partition of its own (rules P1-P5).

    ``assignment`` maps each existing partition to its replica list (first: the preferred
    leader). Brokers are node ids; an empty ``brokers`` plans nothing.
    """
    live = sorted(set(brokers))
    if not live:
        return Placement()
    rf = replication_factor(len(live))
    owners: dict[int, int] = {}
    orphans: list[int] = []
    for partition in sorted(assignment):
        replicas = assignment[partition]
        preferred = replicas[0] if replicas else None
        if preferred in live and preferred not in owners.values():
            owners[partition] = preferred  # P2
        else:
            orphans.append(partition)
    unowned = [b for b in live if b not in owners.values()]
    new_owners: list[int] = []
    for broker in unowned:
        if orphans:
            owners[orphans.pop(0)] = broker  # P4: take over
        else:
            new_owners.append(broker)  # P4: a new partition
    spares: dict[int, int] = {}
    for partition in orphans:
        replicas = tuple(assignment[partition])
        if replicas and _is_sound(replicas, replicas[0], live, rf):
            spares[partition] = replicas[0]  # P5: kept as it is
        else:
            # P5: moved, preferably to a broker owning a lower partition, which keeps
            # its ownership when planned again (the lowest claim wins, P2).
            below = sorted(b for p, b in owners.items() if p < partition) or live
            spares[partition] = below[partition % len(below)]
    reassign: dict[int, tuple[int, ...]] = {}
    for partition, owner in (*owners.items(), *spares.items()):
        replicas = tuple(assignment[partition])
        if not _is_sound(replicas, owner, live, rf):
            reassign[partition] = ring_from(owner, live, rf)  # P3
    start = max(assignment, default=-1) + 1
    for offset, broker in enumerate(new_owners):
        owners[start + offset] = broker
    return Placement(
        owners=dict(sorted(owners.items())),
        spares=dict(sorted(spares.items())),
        reassign=dict(sorted(reassign.items())),
        new_partitions=tuple(ring_from(b, live, rf) for b in new_owners),
    )


def _is_sound(replicas: tuple[int, ...], owner: int, live: Sequence[int], rf: int) -> bool:
    return (
        len(replicas) == rf
        and len(set(replicas)) == rf
        and replicas[0] == owner
        and all(r in live for r in replicas)
    )
