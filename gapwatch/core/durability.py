"""The durability audit's rules: facts about a topic and its producers in, named findings out.

Pure: the caller reads a topic's settings and placement from Kafka
(:mod:`gapwatch.kafka.topic_facts`) and the stamped producers' write settings from their
reports, and passes them in; :func:`audit_topic` returns the findings. No I/O, no clock.

Each finding is a named risk of losing acknowledged records (or of losing the ability to
write them), with the reason in one sentence and the fix. The names are stable (they are
the ``finding`` label of ``gapwatch_durability_finding`` and appear in ``GET /topics``),
and the set is closed: :data:`FINDINGS` lists every one, in the order the rules run.

D1 ``rf_below_3``: fewer than three replicas of some partition.
D2 ``min_isr_1``: ``min.insync.replicas`` of 1.
D3 ``min_isr_not_below_rf``: ``min.insync.replicas`` at or above the replication factor.
D4 ``unclean_election_enabled``: ``unclean.leader.election.enable=true``.
D5 ``partition_offline``: some partition has no leader.
D6 ``under_min_isr``: some partition's in-sync replicas are fewer than ``min.insync.replicas``.
D7 ``under_replicated``: some partition's in-sync replicas are fewer than its replicas.
D8 ``replicas_share_rack``: racks are set and some partition keeps two replicas in one rack
   although the cluster has a rack to spare.
D9 ``producer_acks_not_all``: a stamped producer writing to the topic reports ``acks`` 0 or 1.
D10 ``producer_not_idempotent``: a stamped producer writing to the topic reports idempotence
    off.

D1-D4 are the topic's configuration (they hold until someone changes it), D5-D8 its
current placement (they come and go with broker failures and restarts), D9-D10 its
producers (they hold while such a producer keeps reporting).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from gapwatch.core.model import WriteSettings

NO_LEADER: Final = -1  # Kafka's leader id of a partition without one


@dataclass(frozen=True, slots=True)
class PartitionPlacement:
    """Where one partition lives: its leader (``-1``: none), replicas and in-sync replicas
    (broker ids)."""

    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TopicSettings:
    """A topic's durability settings (effective values: the topic's own or the broker
    default) and its partitions' placement. ``racks`` maps each broker id to its rack
    (``None``: the broker has no ``broker.rack``); ``config_sources`` says where each config
    value came from (``topic``, ``broker``, ``kafka default``...), for people: no rule
    reads it."""

    topic: str
    min_insync_replicas: int
    unclean_leader_election: bool
    partitions: tuple[PartitionPlacement, ...]
    racks: Mapping[int, str | None] = field(default_factory=dict)
    config_sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def replication_factor(self) -> int:
        """The smallest replica count of any partition (0 without partitions)."""
        return min((len(p.replicas) for p in self.partitions), default=0)


@dataclass(frozen=True, slots=True)
class ProducerWrites:
    """How one stamped producer writes to the topic, as its latest report says."""

    producer: str
    settings: WriteSettings


@dataclass(frozen=True, slots=True)
class FindingRule:
    """One entry of the table: the finding's name, why it risks loss, and the fix."""

    name: str
    reason: str
    fix: str


@dataclass(frozen=True, slots=True)
class Finding:
    """A finding that holds for a topic: the rule's name, reason and fix, and ``detail``,
    the facts that made it hold (which partitions, which producers)."""

    name: str
    detail: str
    reason: str
    fix: str

    def to_json(self) -> dict[str, str]:
        """The finding as ``GET /topics`` and ``gapwatch audit --durability --json`` show it."""
        return {"name": self.name, "detail": self.detail, "reason": self.reason, "fix": self.fix}


FINDINGS: Final[tuple[FindingRule, ...]] = (
    FindingRule(
        "rf_below_3",
        "With fewer than three copies a partition cannot lose a broker and still keep two "
        "in-sync copies of every acknowledged record, so the next failure loses data or "
        "stops writes.",
        "Give the topic replication factor 3 (kafka-reassign-partitions).",
    ),
    FindingRule(
        "min_isr_1",
        "With min.insync.replicas=1 an acks=all write is acknowledged by the leader alone once "
        "the followers fall out of sync, and is lost if that leader then fails.",
        "Set min.insync.replicas=2 (with replication factor 3).",
    ),
    FindingRule(
        "min_isr_not_below_rf",
        "With min.insync.replicas at or above the replication factor, one broker down makes "
        "every acks=all write fail, which pushes producers to drop records or to weaker acks.",
        "Keep min.insync.replicas one below the replication factor (RF 3, min ISR 2).",
    ),
    FindingRule(
        "unclean_election_enabled",
        "With unclean leader election an out-of-sync replica can become leader and the log is "
        "truncated to its copy, deleting records that were acknowledged.",
        "Set unclean.leader.election.enable=false.",
    ),
    FindingRule(
        "partition_offline",
        "A partition without a leader accepts no writes, so producers buffer, time out and "
        "drop records until a replica comes back.",
        "Bring back the brokers holding its replicas; do not enable unclean election to do it.",
    ),
    FindingRule(
        "under_min_isr",
        "A partition with fewer in-sync replicas than min.insync.replicas refuses acks=all "
        "writes, and its remaining copies are all that stands between it and loss.",
        "Bring the lagging or stopped brokers back and watch the ISR grow again.",
    ),
    FindingRule(
        "under_replicated",
        "A partition with a replica out of sync has fewer copies of its newest records than "
        "configured, so one failure fewer is needed to lose them.",
        "Find the broker that fell behind (stopped, slow disk, network) and bring it back.",
    ),
    FindingRule(
        "replicas_share_rack",
        "Replicas in the same rack fail together with it, so a rack outage can take every "
        "in-sync copy of a partition although another rack was free.",
        "Reassign the partition's replicas across racks (broker.rack set on every broker).",
    ),
    FindingRule(
        "producer_acks_not_all",
        "A producer writing with acks=0 or acks=1 is told a record is written before any "
        "follower has it, so a leader failure loses it silently.",
        "Set acks=all on the producer (with min.insync.replicas=2 on the topic).",
    ),
    FindingRule(
        "producer_not_idempotent",
        "Without idempotence a retried send can be written twice or land after later records, "
        "and the retries that prevent loss become duplicates and reordering.",
        "Set enable.idempotence=true on the producer (the default of Java clients since 3.0).",
    ),
)
FINDING_NAMES: Final[tuple[str, ...]] = tuple(rule.name for rule in FINDINGS)
_RULES_BY_NAME: Final[Mapping[str, FindingRule]] = {rule.name: rule for rule in FINDINGS}


def rule_of(name: str) -> FindingRule:
    """The table entry of finding ``name`` (``KeyError`` for a name not in the table)."""
    return _RULES_BY_NAME[name]


@dataclass(frozen=True, slots=True)
class TopicAudit:
    """One topic's facts and the findings they give."""

    settings: TopicSettings
    producers: tuple[ProducerWrites, ...]
    findings: tuple[Finding, ...]

    @property
    def finding_names(self) -> frozenset[str]:
        """The names of the findings that hold."""
        return frozenset(f.name for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        """The topic as ``GET /topics`` and ``gapwatch audit --durability --json`` show it."""
        s = self.settings
        return {
            "topic": s.topic,
            "settings": {
                "partitions": len(s.partitions),
                "replication_factor": s.replication_factor,
                "min_insync_replicas": s.min_insync_replicas,
                "unclean_leader_election_enable": s.unclean_leader_election,
                "smallest_isr": min((len(p.isr) for p in s.partitions), default=0),
                "config_sources": dict(s.config_sources),
            },
            "producers": [
                {
                    "producer": w.producer,
                    "acks": w.settings.acks,
                    "idempotence": w.settings.idempotence,
                }
                for w in self.producers
            ],
            "findings": [f.to_json() for f in self.findings],
        }


def audit(settings: TopicSettings, producers: Sequence[ProducerWrites] = ()) -> TopicAudit:
    """:func:`audit_topic` with the facts it judged."""
    return TopicAudit(settings, tuple(producers), tuple(audit_topic(settings, producers)))


def audit_topic(settings: TopicSettings, producers: Sequence[ProducerWrites] = ()) -> list[Finding]:
    """Every finding that holds for ``settings`` and ``producers``, in table order."""
    found: list[Finding] = []
    for name, check in _CHECKS:
        detail = check(settings, producers)
        if detail is not None:
            rule = _RULES_BY_NAME[name]
            found.append(Finding(name, detail, rule.reason, rule.fix))
    return found


# --- one function per rule: the detail text when it holds, else None -------------------


def _rf_below_3(t: TopicSettings, _: Sequence[ProducerWrites]) -> str | None:  # D1
    rf = t.replication_factor
    return f"replication factor {rf}" if rf < 3 else None


def _min_isr_1(t: TopicSettings, _: Sequence[ProducerWrites]) -> str | None:  # D2
    return "min.insync.replicas=1" if t.min_insync_replicas <= 1 else None


def _min_isr_not_below_rf(t: TopicSettings, _: Sequence[ProducerWrites]) -> str | None:  # D3
    rf = t.replication_factor
    if t.min_insync_replicas < rf:
        return None
    return f"min.insync.replicas={t.min_insync_replicas} with replication factor {rf}"


def _unclean(t: TopicSettings, _: Sequence[ProducerWrites]) -> str | None:  # D4
    return "unclean.leader.election.enable=true" if t.unclean_leader_election else None


def _offline(t: TopicSettings, _: Sequence[ProducerWrites]) -> str | None:  # D5
    offline = [p.partition for p in t.partitions if p.leader == NO_LEADER]
    return f"no leader: partitions {_numbers(offline)}" if offline else None


def _under_min_isr(t: TopicSettings, _: Sequence[ProducerWrites]) -> str | None:  # D6
    low = [p for p in t.partitions if len(p.isr) < t.min_insync_replicas]
    if not low:
        return None
    sizes = ", ".join(f"{p.partition} (ISR {len(p.isr)})" for p in low[:_LISTED])
    more = f" and {len(low) - _LISTED} more" if len(low) > _LISTED else ""
    return f"below min.insync.replicas={t.min_insync_replicas}: partitions {sizes}{more}"


def _under_replicated(t: TopicSettings, _: Sequence[ProducerWrites]) -> str | None:  # D7
    lagging = [p.partition for p in t.partitions if len(set(p.isr)) < len(set(p.replicas))]
    return f"replicas out of sync: partitions {_numbers(lagging)}" if lagging else None


def _share_rack(t: TopicSettings, _: Sequence[ProducerWrites]) -> str | None:  # D8
    cluster_racks = {rack for rack in t.racks.values() if rack is not None}
    if not cluster_racks:
        return None  # racks are not set: nothing to compare
    crowded = []
    for p in t.partitions:
        racks = [t.racks.get(broker) for broker in p.replicas]
        if any(rack is None for rack in racks):
            continue  # a replica on a broker without a rack: its place is unknown
        # As spread as the cluster allows: one rack per replica, up to the racks there are.
        if len(set(racks)) < min(len(racks), len(cluster_racks)):
            crowded.append(p.partition)
    return f"replicas sharing a rack: partitions {_numbers(crowded)}" if crowded else None


def _acks_not_all(_: TopicSettings, producers: Sequence[ProducerWrites]) -> str | None:  # D9
    weak = sorted(
        f"{w.producer} (acks={w.settings.acks})"
        for w in producers
        if w.settings.acks is not None and w.settings.acks != "all"
    )
    return f"producers {_listed(weak)}" if weak else None


def _not_idempotent(_: TopicSettings, producers: Sequence[ProducerWrites]) -> str | None:  # D10
    plain = sorted(w.producer for w in producers if w.settings.idempotence is False)
    return f"producers {_listed(plain)}" if plain else None


_Check = Callable[[TopicSettings, Sequence[ProducerWrites]], "str | None"]
_CHECKS: Final[tuple[tuple[str, _Check], ...]] = (
    ("rf_below_3", _rf_below_3),
    ("min_isr_1", _min_isr_1),
    ("min_isr_not_below_rf", _min_isr_not_below_rf),
    ("unclean_election_enabled", _unclean),
    ("partition_offline", _offline),
    ("under_min_isr", _under_min_isr),
    ("under_replicated", _under_replicated),
    ("replicas_share_rack", _share_rack),
    ("producer_acks_not_all", _acks_not_all),
    ("producer_not_idempotent", _not_idempotent),
)
assert tuple(name for name, _ in _CHECKS) == FINDING_NAMES, "one check per table entry, in order"

# A detail names at most this many partitions or producers (a topic may have thousands).
_LISTED: Final = 10


def _numbers(partitions: Iterable[int]) -> str:
    return _listed([str(p) for p in sorted(partitions)])


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_LISTED])
    return shown + (f" and {len(items) - _LISTED} more" if len(items) > _LISTED else "")
