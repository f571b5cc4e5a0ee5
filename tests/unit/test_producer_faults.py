"""The load generator's fault plan, hold-back queue and truth ledger (pure, no Kafka)."""

from __future__ import annotations

import argparse
from collections import Counter

import pytest

from gapwatch.commands.loadgen import config_from_args, register
from gapwatch.core.model import StreamKey
from gapwatch.producer import ProducerConfigError
from gapwatch.producer.faults import Fault, FaultDecider, FaultPlan, HoldBack, InjectionLedger

KEY = StreamKey("t", 0, "p", 1)


class TestFaultPlan:
    def test_no_faults_by_default(self) -> None:
        """An empty plan never injects anything."""
        decider = FaultDecider(FaultPlan())
        assert {decider.decide() for _ in range(1000)} == {Fault.NONE}

    def test_rates_are_honoured_and_seeded(self) -> None:
        """Each fault appears at about its probability, and a seed repeats the run."""
        plan = FaultPlan(drop=0.1, duplicate=0.2, reorder=0.3, seed=4)
        first = FaultDecider(plan)
        second = FaultDecider(plan)
        run = [first.decide() for _ in range(20_000)]
        assert run == [second.decide() for _ in range(20_000)]
        counts = Counter(run)
        assert counts[Fault.DROP] == pytest.approx(2000, rel=0.1)
        assert counts[Fault.DUPLICATE] == pytest.approx(4000, rel=0.1)
        assert counts[Fault.REORDER] == pytest.approx(6000, rel=0.1)

    @pytest.mark.parametrize(
        ("plan", "field"),
        [
            (FaultPlan(drop=-0.1), "drop"),
            (FaultPlan(duplicate=1.5), "duplicate"),
            (FaultPlan(reorder=float("nan")), "reorder"),
            (FaultPlan(drop=0.6, reorder=0.6), "drop"),
            (FaultPlan(reorder_depth=0), "reorder_depth"),
        ],
    )
    def test_invalid_plans_name_the_field(self, plan: FaultPlan, field: str) -> None:
        """Validation names the bad field."""
        with pytest.raises(ProducerConfigError) as info:
            plan.validate()
        assert info.value.field == field


class TestHoldBack:
    def test_released_after_depth_later_sends_of_its_lane(self) -> None:
        """A held record goes out after `depth` later records of the same lane only."""
        held: HoldBack[str, str] = HoldBack(depth=2)
        held.hold("a", "a0")
        assert held.sent("b") == []  # other lanes do not count
        assert held.sent("a") == []
        assert held.sent("a") == ["a0"]
        assert held.sent("a") == []

    def test_drain_returns_leftovers_in_order(self) -> None:
        """At the end, every held record comes back, oldest first, lane by lane."""
        held: HoldBack[str, int] = HoldBack(depth=5)
        for i in range(3):
            held.hold("a", i)
        held.hold("b", 9)
        assert held.lanes() == ["a", "b"]
        assert held.drain("a") == [0, 1, 2]
        assert held.drain() == [9]
        assert held.lanes() == []


class TestLedger:
    def test_truth_of_a_run(self) -> None:
        """Drops, duplicates and real reorders are listed exactly; last_seq is the max."""
        ledger = InjectionLedger()
        for seq in range(6):
            ledger.stamped(KEY, seq)
        ledger.sent(KEY, 0)
        ledger.dropped(KEY, 1)
        ledger.sent(KEY, 3, copies=2)
        ledger.sent(KEY, 2)  # held back, went out after 3
        ledger.sent(KEY, 4)
        ledger.sent(KEY, 5)
        ledger.failed(KEY, ((4, 4),))
        ledger.crashed("p", 1)
        (stream,) = ledger.to_json()["streams"]
        assert stream == {
            "topic": "t",
            "partition": 0,
            "producer": "p",
            "epoch": 1,
            "last_seq": 5,
            "sent": 6,
            "dropped": [1],
            "duplicated": [3],
            "reordered": [2],
            "failed": [[4, 4]],
            "crashed": True,
        }

    def test_held_record_sent_last_in_order_is_not_reordered(self) -> None:
        """A held record that still went out before any later sequence is in order."""
        ledger = InjectionLedger()
        ledger.sent(KEY, 0)
        ledger.sent(KEY, 1)
        assert ledger.to_json()["totals"]["reordered"] == 0


class TestLoadgenOptions:
    def _parse(self, *argv: str) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        register(parser.add_subparsers())
        return parser.parse_args(["loadgen", *argv])

    def test_options_map_to_config(self) -> None:
        """Every documented option lands in the run configuration."""
        config = config_from_args(
            self._parse(
                "--topic",
                "a",
                "--topic",
                "b",
                "--partitions",
                "4",
                "--rate",
                "50",
                "--count",
                "100",
                "--keys",
                "7",
                "--value-size",
                "10",
                "--producers",
                "3",
                "--acks",
                "1",
                "--drop",
                "0.1",
                "--duplicate",
                "0.05",
                "--reorder",
                "0.02",
                "--reorder-depth",
                "4",
                "--crash",
                "1",
                "--seed",
                "9",
            )
        )
        assert config.topics == ("a", "b")
        assert (config.partitions, config.rate, config.count, config.duration_s) == (
            4,
            50,
            100,
            None,
        )
        assert (config.keys, config.value_size, config.producers, config.acks) == (7, 10, 3, 1)
        assert config.faults == FaultPlan(
            drop=0.1, duplicate=0.05, reorder=0.02, reorder_depth=4, seed=9
        )
        assert config.crash_producers == 1

    def test_defaults_to_ten_seconds(self) -> None:
        """Without --count or --duration the run lasts 10 s."""
        assert config_from_args(self._parse()).duration_s == 10.0

    def test_idempotence_needs_acks_all(self) -> None:
        """An impossible combination is refused before connecting."""
        with pytest.raises(ProducerConfigError) as info:
            config_from_args(self._parse("--idempotent", "--acks", "1"))
        assert info.value.field == "acks"
