"""``gapwatch audit --durability`` without Kafka: its table, summary, and refused arguments."""

from __future__ import annotations

import pytest

from gapwatch.cli import main
from gapwatch.commands.durability_audit import render_audits, summarize_audits
from gapwatch.core.durability import PartitionPlacement, TopicSettings, audit


def topic(name: str, *, rf: int, min_isr: int, unclean: bool = False) -> TopicSettings:
    replicas = tuple(range(1, rf + 1))
    return TopicSettings(name, min_isr, unclean, (PartitionPlacement(0, 1, replicas, replicas),))


class TestTable:
    def test_one_row_per_finding_then_each_reason_and_fix_once(self) -> None:
        """Settings on a topic's first row; every finding's reason and fix follow once,
        however many topics have it."""
        audits = [
            audit(topic("a", rf=2, min_isr=1)),
            audit(topic("b", rf=3, min_isr=1)),
            audit(topic("ok", rf=3, min_isr=2)),
        ]
        text = render_audits(audits)
        lines = text.splitlines()
        assert lines[0].split() == ["TOPIC", "RF", "MIN_ISR", "UNCLEAN", "FINDING", "DETAIL"]
        assert lines[1].split()[:5] == ["a", "2", "1", "false", "rf_below_3"]
        assert lines[2].split()[:1] == ["min_isr_1"]
        assert lines[3].split()[:5] == ["b", "3", "1", "false", "min_isr_1"]
        assert lines[4].split() == ["ok", "3", "2", "false", "-", "no", "findings"]
        assert text.count("min_isr_1: With min.insync.replicas=1") == 1
        assert "  fix: Give the topic replication factor 3" in text
        assert summarize_audits(audits) == "3 topic(s) audited: 3 finding(s)"

    def test_summary_without_findings(self) -> None:
        assert summarize_audits([audit(topic("ok", rf=3, min_isr=2))]) == (
            "1 topic(s) audited: no findings"
        )


class TestArguments:
    def test_a_range_audit_takes_one_topic(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Several --topic are for --durability; a range audit refuses them (exit 2)."""
        argv = ["audit", "--bootstrap-servers", "127.0.0.1:9", "--topic", "a", "--topic", "b"]
        assert main(argv) == 2
        assert "one --topic per range audit" in capsys.readouterr().err

    def test_an_unreachable_cluster_is_an_error_not_a_finding(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Exit 2 (could not run), never 0 or 1, when no broker answers."""
        argv = [
            "audit",
            "--durability",
            "--bootstrap-servers",
            "127.0.0.1:9",
            "--topic",
            "a",
            "--timeout",
            "5",
        ]
        assert main(argv) == 2
        assert capsys.readouterr().err.startswith("gapwatch audit: ")
