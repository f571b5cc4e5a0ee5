"""The canary's pure decisions: placement (P1-P5), availability (A1-A2), lanes, settings."""

from __future__ import annotations

import argparse
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gapwatch.core.wire import parse_stamp
from gapwatch.errors import ConfigError
from gapwatch.kafka.canary.availability import (
    LastWrite,
    availability,
    is_available,
    listed_brokers,
)
from gapwatch.kafka.canary.lanes import Lane, canary_value
from gapwatch.kafka.canary.placement import (
    min_insync_replicas,
    plan_placement,
    replication_factor,
    ring_from,
)
from gapwatch.kafka.canary.settings import CanarySettings
from gapwatch.kafka.canary.stats import Buckets
from gapwatch.kafka.settings import KafkaSettings
from gapwatch.monitor.config import MonitorConfig, WatchSettings, with_canary_watched
from gapwatch.monitor.config_sources import add_arguments, load_config


class TestPlacement:
    def test_p1_replication_factor_and_min_isr_follow_the_cluster_size(self) -> None:
        """Three replicas and min ISR 2; a one-broker cluster gets RF 1 and min ISR 1."""
        assert [replication_factor(n) for n in (1, 2, 3, 5)] == [1, 2, 3, 3]
        assert [min_insync_replicas(n) for n in (1, 2, 3, 5)] == [1, 2, 2, 2]

    def test_new_topic_gets_one_partition_per_broker_on_a_ring(self) -> None:
        """An empty topic: a partition led by each broker, followers the next brokers."""
        placement = plan_placement([3, 1, 2], {})
        assert placement.new_partitions == ((1, 2, 3), (2, 3, 1), (3, 1, 2))
        assert dict(placement.owners) == {0: 1, 1: 2, 2: 3}
        assert placement.reassign == {}

    def test_p2_a_sound_placement_is_settled(self) -> None:
        """Each broker already prefers its own partition: nothing changes."""
        assignment = {0: (1, 2, 3), 1: (2, 3, 1), 2: (3, 1, 2)}
        placement = plan_placement([1, 2, 3], assignment)
        assert placement.is_settled
        assert dict(placement.owners) == {0: 1, 1: 2, 2: 3}

    def test_p2_current_leadership_does_not_matter_only_the_preferred_replica(self) -> None:
        """Placement reads replica lists only: a failover changes nothing here (the
        runner restores leaders with an election instead)."""
        placement = plan_placement([1, 2, 3], {0: (2, 1, 3), 1: (1, 2, 3), 2: (3, 2, 1)})
        assert placement.is_settled
        assert dict(placement.owners) == {0: 2, 1: 1, 2: 3}

    def test_p4_a_joining_broker_gets_a_new_partition(self) -> None:
        """Broker 4 joins a settled 3-broker topic: one partition added, led by 4."""
        assignment = {0: (1, 2, 3), 1: (2, 3, 1), 2: (3, 1, 2)}
        placement = plan_placement([1, 2, 3, 4], assignment)
        assert placement.new_partitions == ((4, 1, 2),)
        assert placement.owners[3] == 4
        # The others keep their preferred leader; their followers move onto the new ring.
        assert all(placement.owners[p] == assignment[p][0] for p in assignment)

    def test_p3_p4_a_departed_brokers_partition_goes_to_a_new_broker(self) -> None:
        """Broker 3 left and 4 joined: 4 takes over 3's partition, replicas on live brokers."""
        assignment = {0: (1, 2, 3), 1: (2, 3, 1), 2: (3, 1, 2)}
        placement = plan_placement([1, 2, 4], assignment)
        assert placement.new_partitions == ()
        assert dict(placement.owners) == {0: 1, 1: 2, 2: 4}
        assert placement.reassign == {0: (1, 2, 4), 1: (2, 4, 1), 2: (4, 1, 2)}

    def test_p5_an_orphan_partition_is_moved_onto_existing_brokers(self) -> None:
        """Broker 3 left for good and nobody joined: its partition is kept (Kafka cannot
        delete one) but its replicas move to brokers that exist."""
        assignment = {0: (1, 2, 3), 1: (2, 3, 1), 2: (3, 1, 2)}
        placement = plan_placement([1, 2], assignment)
        assert placement.new_partitions == ()
        assert set(placement.reassign) == {0, 1, 2}
        for replicas in placement.reassign.values():
            assert set(replicas) == {1, 2}
        assert dict(placement.owners) == {0: 1, 1: 2}
        assert set(placement.spares) == {2}

    def test_p3_replicas_that_repeat_a_broker_or_miss_one_are_fixed(self) -> None:
        """A topic made with RF 1 on a growing cluster gets full replica lists."""
        placement = plan_placement([1, 2, 3], {0: (1,), 1: (2, 2, 3)})
        assert placement.reassign == {0: (1, 2, 3), 1: (2, 3, 1)}
        assert placement.new_partitions == ((3, 1, 2),)

    def test_no_brokers_plans_nothing(self) -> None:
        """Without any broker there is nothing to place."""
        assert plan_placement([], {0: (1, 2, 3)}).is_settled

    def test_ring_wraps_around(self) -> None:
        """Followers are the next brokers by id, wrapping past the highest."""
        assert ring_from(5, [1, 3, 5], 3) == (5, 1, 3)

    @given(
        brokers=st.sets(st.integers(0, 9), min_size=1, max_size=6),
        existing=st.lists(
            st.lists(st.integers(0, 9), min_size=1, max_size=4), min_size=0, max_size=8
        ),
    )
    def test_after_applying_the_plan_every_broker_owns_a_sound_partition(
        self, brokers: set[int], existing: list[list[int]]
    ) -> None:
        """Property: applying a plan gives each broker exactly one partition it owns and
        prefers, every replica list is sound, and planning again changes nothing."""
        assignment = {p: tuple(r) for p, r in enumerate(existing)}
        placement = plan_placement(brokers, assignment)
        after = {**assignment, **placement.reassign}
        for offset, replicas in enumerate(placement.new_partitions):
            after[len(assignment) + offset] = replicas
        rf = replication_factor(len(brokers))
        for replicas in after.values():
            assert len(replicas) == rf == len(set(replicas))
            assert set(replicas) <= brokers
        preferred = [after[p][0] for p in sorted(after)]
        assert set(preferred) >= brokers
        assert sorted(placement.owners.values()) == sorted(brokers)
        assert set(placement.owners) | set(placement.spares) == set(after)
        for partition, owner in placement.owners.items():
            assert after[partition][0] == owner
        again = plan_placement(brokers, after)
        assert again.is_settled
        # A spare moved below its broker's own partition may take over that ownership
        # (same broker, both sound): each broker still owns exactly one.
        assert sorted(again.owners.values()) == sorted(brokers)


class TestAvailability:
    OWNERS = {0: 1, 1: 2, 2: 3}
    LEADERS: dict[int, int | None] = {0: 1, 1: 2, 2: 3}

    def writes(self, at: float) -> dict[int, LastWrite]:
        return {p: LastWrite(at=at, leader=b) for p, b in self.OWNERS.items()}

    def test_leading_with_a_recent_write_is_available(self) -> None:
        """A1 and A2 hold for every broker of a healthy cluster."""
        result = availability(
            [1, 2, 3],
            owners=self.OWNERS,
            leaders=self.LEADERS,
            last_writes=self.writes(100.0),
            now=104.0,
            window=5.0,
        )
        assert result == {1: True, 2: True, 3: True}

    def test_a2_no_write_within_the_window_is_unavailable(self) -> None:
        """Leading, but the last acknowledged write is older than the window."""
        common = {"own_partition": 1, "leaders": self.LEADERS, "window": 5.0}
        writes = self.writes(100.0)
        assert is_available(2, last_writes=writes, now=105.0, **common)  # type: ignore[arg-type]
        assert not is_available(2, last_writes=writes, now=105.01, **common)  # type: ignore[arg-type]

    def test_a1_a_broker_that_lost_leadership_is_unavailable_even_if_writes_succeed(
        self,
    ) -> None:
        """Broker 2's partition now led by 3, writes acknowledged through 3: 2 is down."""
        leaders = {**self.LEADERS, 1: 3}
        writes = {**self.writes(100.0), 1: LastWrite(at=100.0, leader=3)}
        result = availability(
            [1, 2, 3],
            owners=self.OWNERS,
            leaders=leaders,
            last_writes=writes,
            now=101.0,
            window=5.0,
        )
        assert result == {1: True, 2: False, 3: True}

    def test_a2_a_write_acknowledged_by_another_leader_does_not_count(self) -> None:
        """Leadership came back to 2, but the last write went through 3: not yet."""
        writes = {1: LastWrite(at=100.0, leader=3)}
        assert not is_available(
            2, own_partition=1, leaders=self.LEADERS, last_writes=writes, now=100.5, window=5.0
        )

    def test_a_broker_without_a_partition_or_write_is_unavailable(self) -> None:
        """A broker that owns nothing, or has never had a write acknowledged, is 0."""
        result = availability(
            [1, 4], owners=self.OWNERS, leaders=self.LEADERS, last_writes={}, now=1.0, window=5.0
        )
        assert result == {1: False, 4: False}

    def test_a1_a_partition_without_leader_is_unavailable(self) -> None:
        """No leader (offline partition): its owner is unavailable."""
        leaders: dict[int, int | None] = {**self.LEADERS, 2: None}
        result = availability(
            [3],
            owners=self.OWNERS,
            leaders=leaders,
            last_writes=self.writes(10.0),
            now=10.0,
            window=5.0,
        )
        assert result == {3: False}


class TestListedBrokers:
    def test_a0_a_missing_broker_stays_listed_until_its_departure(self) -> None:
        """Broker 3 unseen for 100 s (departure 600 s) is listed (at 0); unseen for 700 s
        and owning nothing it is dropped; an owner is always listed."""
        last_seen = {1: 1000.0, 2: 1000.0, 3: 900.0, 4: 300.0, 5: 200.0}
        owners = {0: 1, 1: 2, 2: 3, 3: 5}
        listed = listed_brokers(last_seen, owners, now=1000.0, departure=600.0)
        assert listed == [1, 2, 3, 5]


class TestLane:
    def lane(self) -> Lane:
        return Lane(producer="gapwatch-canary/h/1", epoch=7, value=b"v")

    def test_a_failed_write_is_retried_with_the_same_record(self) -> None:
        """Until acknowledged, the lane hands out the same record: same stamp, same time."""
        lane = self.lane()
        first = lane.record(1_000)
        assert lane.record(2_000) is first
        stamp = parse_stamp(list(first.headers))
        assert stamp is not None
        assert (stamp.producer, stamp.epoch, stamp.seq) == ("gapwatch-canary/h/1", 7, 0)

    def test_sequences_advance_only_on_acknowledgement_and_never_skip(self) -> None:
        """Acknowledged records get consecutive sequences whatever failed in between."""
        lane = self.lane()
        seqs = []
        for attempt in range(10):
            record = lane.record(attempt)
            if attempt % 3 != 1:  # every third attempt "fails"
                lane.acknowledged(record)
                seqs.append(record.seq)
        assert seqs == list(range(len(seqs)))
        assert lane.next_seq == len(seqs)

    def test_an_old_record_acknowledged_late_changes_nothing(self) -> None:
        """Only the pending record advances the lane."""
        lane = self.lane()
        old = lane.record(1)
        lane.acknowledged(old)
        current = lane.record(2)
        lane.acknowledged(old)
        assert lane.record(3) is current

    def test_canary_value_has_the_asked_size(self) -> None:
        """Filler of exactly the configured size."""
        assert [len(canary_value(n)) for n in (1, 16, 64, 100)] == [1, 16, 64, 100]


class TestBuckets:
    def test_cumulative_counts_end_with_inf(self) -> None:
        """Values land in the first bucket whose bound is >= them, +Inf last."""
        buckets = Buckets((0.1, 1.0))
        for value in (0.05, 0.1, 0.5, 3.0, -1.0):
            buckets.observe(value)
        assert buckets.cumulative() == [("0.1", 3.0), ("1.0", 4.0), ("+Inf", 5.0)]
        assert buckets.total == pytest.approx(3.65)


class TestCanarySettings:
    def test_defaults_are_valid(self) -> None:
        """The defaults validate: 2 records/s per broker, 5 s window."""
        CanarySettings().validate()

    @pytest.mark.parametrize(
        ("change", "key"),
        [
            ({"rate": 0.0}, "canary_rate"),
            ({"rate": 100.0}, "canary_rate"),
            ({"window": 1.0}, "canary_window"),
            ({"request_timeout": 0.0}, "canary_request_timeout"),
            ({"topic": ""}, "canary_topic"),
            ({"departure": 1.0}, "canary_departure"),
            ({"check_interval": 0.0}, "canary_check_interval"),
        ],
    )
    def test_bad_values_name_their_key(self, change: dict[str, object], key: str) -> None:
        """Each out-of-range value raises ConfigError naming its key."""
        settings = dataclasses.replace(CanarySettings(), **change)  # type: ignore[arg-type]
        with pytest.raises(ConfigError) as info:
            settings.validate()
        assert info.value.key == key


class TestCanaryWatched:
    KAFKA = KafkaSettings(bootstrap_servers=("k:9092",))

    def test_the_canary_topic_is_watched_with_the_others(self) -> None:
        """--canary adds the canary topic to the watched topics."""
        config = MonitorConfig(
            kafka=self.KAFKA,
            watch=WatchSettings(topics=("orders",)),
            canary=CanarySettings(enabled=True),
        ).validate()
        assert with_canary_watched(config).watch.topics == ("orders", "__gapwatch_canary")

    def test_the_canary_alone_is_a_valid_monitor(self) -> None:
        """--canary without --topic watches the canary topic only."""
        config = MonitorConfig(kafka=self.KAFKA, canary=CanarySettings(enabled=True)).validate()
        assert with_canary_watched(config).watch.topics == ("__gapwatch_canary",)

    def test_a_pattern_gets_the_canary_topic_as_an_alternative(self) -> None:
        """With topic_pattern, the canary topic is matched as well."""
        config = MonitorConfig(
            kafka=self.KAFKA,
            watch=WatchSettings(topic_pattern="orders-.*"),
            canary=CanarySettings(enabled=True),
        ).validate()
        pattern = with_canary_watched(config).watch.topic_pattern
        assert pattern == r"(?:orders-.*)|__gapwatch_canary"

    def test_without_the_canary_nothing_changes(self) -> None:
        """Off (the default): the config is returned as is, and topics are required."""
        config = MonitorConfig(kafka=self.KAFKA, watch=WatchSettings(topics=("t",))).validate()
        assert with_canary_watched(config) is config
        with pytest.raises(ConfigError):
            MonitorConfig(kafka=self.KAFKA).validate()

    def test_the_canary_topic_cannot_be_one_of_gapwatchs_own(self) -> None:
        """A canary topic named like the gap log is refused."""
        config = MonitorConfig(
            kafka=self.KAFKA,
            canary=CanarySettings(enabled=True, topic=MonitorConfig().gap_log.topic),
        )
        with pytest.raises(ConfigError, match="canary_topic"):
            config.validate()


class TestCanaryFlags:
    def parse(self, *argv: str) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        return parser.parse_args(list(argv))

    def test_monitor_flags_and_variables_reach_the_canary_settings(self) -> None:
        """--canary alone makes a valid monitor config; its keys come from flags or
        GAPWATCH_* variables like every other key, and a bad one is named."""
        config = load_config(
            self.parse("--canary", "--canary-rate", "4", "--bootstrap-servers", "k:9092"),
            {"GAPWATCH_CANARY_WINDOW": "3"},
        )
        assert config.canary == CanarySettings(enabled=True, rate=4.0, window=3.0)
        with pytest.raises(ConfigError, match="canary_window"):
            load_config(
                self.parse("--canary", "--bootstrap-servers", "k:9092"),
                {"GAPWATCH_CANARY_WINDOW": "0.5"},
            )
