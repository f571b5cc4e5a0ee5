"""The durability audit's rule table, rule by rule (D1-D10 of gapwatch.core.durability)."""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gapwatch.core.durability import (
    FINDING_NAMES,
    FINDINGS,
    NO_LEADER,
    PartitionPlacement,
    ProducerWrites,
    TopicSettings,
    audit,
    audit_topic,
    rule_of,
)
from gapwatch.core.model import WriteSettings


def placed(
    partition: int, replicas: tuple[int, ...], isr: tuple[int, ...] | None = None
) -> PartitionPlacement:
    """A partition led by its first replica, all in sync unless ``isr`` says otherwise."""
    return PartitionPlacement(
        partition, leader=replicas[0], replicas=replicas, isr=replicas if isr is None else isr
    )


SAFE = TopicSettings(
    topic="orders",
    min_insync_replicas=2,
    unclean_leader_election=False,
    partitions=(placed(0, (1, 2, 3)), placed(1, (2, 3, 1)), placed(2, (3, 1, 2))),
    racks={1: None, 2: None, 3: None},
)


def names(settings: TopicSettings, producers: tuple[ProducerWrites, ...] = ()) -> list[str]:
    return [finding.name for finding in audit_topic(settings, producers)]


def writes(producer: str, acks: str | None, idempotence: bool | None) -> ProducerWrites:
    return ProducerWrites(producer, WriteSettings(acks=acks, idempotence=idempotence))


class TestTable:
    def test_names_are_unique_stable_snake_case_ids(self) -> None:
        """The metric's finding label takes these values only: unique, snake_case."""
        assert len(set(FINDING_NAMES)) == len(FINDING_NAMES) == 10
        assert all(re.fullmatch(r"[a-z][a-z0-9_]*", name) for name in FINDING_NAMES)

    def test_every_rule_has_one_sentence_of_reason_and_a_fix(self) -> None:
        """Reasons are one sentence ending in a full stop; every fix says what to set/do."""
        for rule in FINDINGS:
            assert rule.reason.endswith("."), rule.name
            assert ". " not in rule.reason, rule.name
            assert rule.fix, rule.name

    def test_rule_of_finds_each_entry(self) -> None:
        assert [rule_of(name).name for name in FINDING_NAMES] == list(FINDING_NAMES)
        with pytest.raises(KeyError):
            rule_of("not_a_finding")

    def test_rf3_min_isr2_unclean_off_has_no_finding(self) -> None:
        """The configuration the article recommends, fully in sync: nothing to say."""
        assert audit_topic(SAFE) == []

    def test_findings_carry_the_tables_reason_and_fix(self) -> None:
        """A finding repeats its rule's reason and fix and adds the facts as detail."""
        (finding,) = audit_topic(dataclasses.replace(SAFE, unclean_leader_election=True))
        rule = rule_of("unclean_election_enabled")
        assert (finding.reason, finding.fix) == (rule.reason, rule.fix)
        assert finding.detail == "unclean.leader.election.enable=true"
        assert set(finding.to_json()) == {"name", "detail", "reason", "fix"}


class TestConfigRules:
    def test_d1_rf_below_3(self) -> None:
        """D1: two replicas (min ISR 1 to keep D3 out) is named with its factor."""
        topic = dataclasses.replace(
            SAFE, min_insync_replicas=1, partitions=(placed(0, (1, 2)), placed(1, (2, 3)))
        )
        assert names(topic) == ["rf_below_3", "min_isr_1"]
        assert audit_topic(topic)[0].detail == "replication factor 2"

    def test_d1_uses_the_smallest_replica_count(self) -> None:
        """One partition with fewer replicas is enough (RF is per partition in Kafka)."""
        topic = dataclasses.replace(SAFE, partitions=(*SAFE.partitions, placed(3, (1, 2))))
        assert "rf_below_3" in names(topic)

    def test_d2_min_isr_1(self) -> None:
        """D2: RF 3 with min ISR 1."""
        assert names(dataclasses.replace(SAFE, min_insync_replicas=1)) == ["min_isr_1"]

    def test_d3_min_isr_equal_to_rf(self) -> None:
        """D3: min ISR 3 on RF 3: one broker down stops acks=all writes."""
        topic = dataclasses.replace(SAFE, min_insync_replicas=3)
        assert names(topic) == ["min_isr_not_below_rf"]
        assert audit_topic(topic)[0].detail == "min.insync.replicas=3 with replication factor 3"

    def test_d3_min_isr_above_rf(self) -> None:
        """D3 also when min ISR exceeds RF (acks=all writes can never succeed); the ISR is
        then below min ISR too (D6)."""
        topic = dataclasses.replace(SAFE, min_insync_replicas=4)
        assert names(topic) == ["min_isr_not_below_rf", "under_min_isr"]

    def test_rf1_topic_collects_every_config_finding_it_earns(self) -> None:
        """RF 1, min ISR 1: fewer than 3 copies, min ISR 1, and min ISR not below RF."""
        topic = dataclasses.replace(
            SAFE, min_insync_replicas=1, partitions=(placed(0, (1,)), placed(1, (2,)))
        )
        assert names(topic) == ["rf_below_3", "min_isr_1", "min_isr_not_below_rf"]

    def test_d4_unclean_election_enabled(self) -> None:
        assert names(dataclasses.replace(SAFE, unclean_leader_election=True)) == [
            "unclean_election_enabled"
        ]


class TestPlacementRules:
    def test_d5_partition_offline(self) -> None:
        """D5: a partition without a leader, named by number."""
        offline = PartitionPlacement(1, leader=NO_LEADER, replicas=(2, 3, 1), isr=(2, 3, 1))
        topic = dataclasses.replace(SAFE, partitions=(SAFE.partitions[0], offline))
        assert names(topic) == ["partition_offline"]
        assert audit_topic(topic)[0].detail == "no leader: partitions 1"

    def test_d6_and_d7_one_replica_in_sync(self) -> None:
        """D6 and D7: an ISR of 1 on RF 3 with min ISR 2 is below both."""
        topic = dataclasses.replace(
            SAFE, partitions=(placed(0, (1, 2, 3), isr=(1,)), *SAFE.partitions[1:])
        )
        assert names(topic) == ["under_min_isr", "under_replicated"]
        details = [f.detail for f in audit_topic(topic)]
        assert details == [
            "below min.insync.replicas=2: partitions 0 (ISR 1)",
            "replicas out of sync: partitions 0",
        ]

    def test_d7_alone_when_the_isr_still_meets_min_isr(self) -> None:
        """D7 without D6: one of three replicas out of sync, two still in."""
        topic = dataclasses.replace(
            SAFE, partitions=(placed(0, (1, 2, 3), isr=(1, 2)), *SAFE.partitions[1:])
        )
        assert names(topic) == ["under_replicated"]

    def test_long_partition_lists_are_cut(self) -> None:
        """A detail names at most ten partitions and says how many more there are."""
        lagging = tuple(placed(p, (1, 2, 3), isr=(1, 2)) for p in range(25))
        (finding,) = audit_topic(dataclasses.replace(SAFE, partitions=lagging))
        assert finding.detail.endswith("partitions 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 15 more")

    def test_d8_replicas_sharing_a_rack_with_racks_to_spare(self) -> None:
        """D8: three racks, and partition 1 keeps two replicas in rack a."""
        racks = {1: "a", 2: "b", 3: "c", 4: "a"}
        topic = dataclasses.replace(
            SAFE, racks=racks, partitions=(placed(0, (1, 2, 3)), placed(1, (1, 4, 2)))
        )
        assert names(topic) == ["replicas_share_rack"]
        assert audit_topic(topic)[0].detail == "replicas sharing a rack: partitions 1"

    def test_d8_not_when_the_cluster_has_fewer_racks_than_replicas(self) -> None:
        """Two racks and RF 3: one rack must hold two replicas; spread over both is fine."""
        racks = {1: "a", 2: "b", 3: "a"}
        assert names(dataclasses.replace(SAFE, racks=racks)) == []

    def test_d8_not_without_racks(self) -> None:
        """Brokers without broker.rack: nothing is known about failure domains."""
        assert names(SAFE) == []

    def test_d8_skips_a_partition_on_a_broker_without_rack(self) -> None:
        """A replica on a broker without a rack makes the partition's spread unknown."""
        racks = {1: "a", 2: "a", 3: None, 4: "b"}
        assert names(dataclasses.replace(SAFE, racks=racks)) == []


class TestProducerRules:
    def test_d9_acks_1_producer_is_named(self) -> None:
        """D9: the producer writing with acks=1 is named with its setting."""
        producers = (writes("billing/7", "1", True), writes("orders-api/1", "all", True))
        findings = audit_topic(SAFE, producers)
        assert [f.name for f in findings] == ["producer_acks_not_all"]
        assert findings[0].detail == "producers billing/7 (acks=1)"

    def test_d9_acks_0_too(self) -> None:
        producers = (writes("fire-and-forget", "0", False),)
        assert names(SAFE, producers) == ["producer_acks_not_all", "producer_not_idempotent"]

    def test_d10_not_idempotent(self) -> None:
        """D10: idempotence off, acks=all."""
        findings = audit_topic(SAFE, (writes("a", "all", False), writes("b", "all", False)))
        assert [(f.name, f.detail) for f in findings] == [
            ("producer_not_idempotent", "producers a, b")
        ]

    def test_unknown_settings_are_not_findings(self) -> None:
        """A producer whose reports do not say is not accused of anything."""
        assert names(SAFE, (writes("old", None, None),)) == []


class TestAudit:
    def test_to_json_has_settings_producers_and_findings(self) -> None:
        """The shape /topics and the CLI's --json show."""
        topic = dataclasses.replace(
            SAFE,
            min_insync_replicas=1,
            config_sources={"min.insync.replicas": "topic"},
            partitions=(placed(0, (1, 2, 3), isr=(1, 2)),),
        )
        body = audit(topic, (writes("p", "1", True),)).to_json()
        assert body["settings"] == {
            "partitions": 1,
            "replication_factor": 3,
            "min_insync_replicas": 1,
            "unclean_leader_election_enable": False,
            "smallest_isr": 2,
            "config_sources": {"min.insync.replicas": "topic"},
        }
        assert body["producers"] == [{"producer": "p", "acks": "1", "idempotence": True}]
        assert [f["name"] for f in body["findings"]] == [
            "min_isr_1",
            "under_replicated",
            "producer_acks_not_all",
        ]

    @given(
        rf=st.integers(1, 5),
        min_isr=st.integers(1, 6),
        unclean=st.booleans(),
        in_sync=st.integers(0, 5),
    )
    def test_config_findings_follow_the_settings_alone(
        self, rf: int, min_isr: int, unclean: bool, in_sync: int
    ) -> None:
        """Whatever the numbers, D1-D4 hold exactly when their settings say so, and every
        finding is a name from the table, in table order."""
        replicas = tuple(range(1, rf + 1))
        topic = TopicSettings(
            topic="t",
            min_insync_replicas=min_isr,
            unclean_leader_election=unclean,
            partitions=(placed(0, replicas, isr=replicas[: min(in_sync, rf)]),),
        )
        found = names(topic)
        assert found == [n for n in FINDING_NAMES if n in found]
        assert ("rf_below_3" in found) == (rf < 3)
        assert ("min_isr_1" in found) == (min_isr == 1)
        assert ("min_isr_not_below_rf" in found) == (min_isr >= rf)
        assert ("unclean_election_enabled" in found) == unclean
        assert ("under_min_isr" in found) == (min(in_sync, rf) < min_isr)
