"""The example Alertmanager configuration (amtool) and its routing of gapwatch's alerts."""

from __future__ import annotations

import pytest
from ops_files_support import ALERTMANAGER_CONFIG, alerting_rules, load_yaml, require_tool, run


class TestAlertmanagerConfig:
    """deploy/alertmanager/alertmanager.yml: routing, grouping and the inhibition."""

    def test_amtool_accepts_the_config(self) -> None:
        """`amtool check-config` finds the configuration valid."""
        result = run(require_tool("amtool"), "check-config", str(ALERTMANAGER_CONFIG))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout

    @pytest.mark.parametrize(
        ("labels", "receiver"),
        [
            pytest.param(
                ["alertname=GapwatchGapConfirmed", "severity=critical", "topic=t", "gap_id=g1"],
                "gapwatch-page",
                id="pushed-gap-pages",
            ),
            pytest.param(
                ["alertname=GapwatchMessageLoss", "severity=critical", "topic=t"],
                "gapwatch-page",
                id="rule-loss-pages",
            ),
            pytest.param(
                ["alertname=GapwatchDuplicateRecords", "severity=warning", "topic=t"],
                "gapwatch-ticket",
                id="warning-tickets",
            ),
            pytest.param(
                ["alertname=SomethingElse", "severity=critical"], "default", id="others-default"
            ),
        ],
    )
    def test_routes_alerts_by_severity(self, labels: list[str], receiver: str) -> None:
        """gapwatch's critical alerts page, its warnings do not, others are left alone."""
        result = run(
            require_tool("amtool"),
            "config",
            "routes",
            "test",
            f"--config.file={ALERTMANAGER_CONFIG}",
            f"--verify.receivers={receiver}",
            *labels,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def test_gapwatch_alerts_are_grouped_by_topic_and_repeated_sparingly(self) -> None:
        """One notification per topic; pages repeat every few hours, not every few minutes."""
        (route,) = load_yaml(ALERTMANAGER_CONFIG)["route"]["routes"]
        assert route["group_by"] == ["topic"]
        (page,) = route["routes"]
        assert page["receiver"] == "gapwatch-page"
        assert page["repeat_interval"] == "4h"
        assert route["repeat_interval"] == "12h"

    def test_pushed_gap_alert_inhibits_rule_based_loss_page_of_its_partition(self) -> None:
        """The inhibition matches on topic and partition and targets the loss pages only."""
        (rule,) = load_yaml(ALERTMANAGER_CONFIG)["inhibit_rules"]
        assert rule["equal"] == ["topic", "partition"]
        assert 'gap_id=~".+"' in rule["source_matchers"]
        assert rule["target_matchers"] == [
            'alertname=~"GapwatchMessageLoss|GapwatchRecordsTruncated"'
        ]
        critical = {r["alert"] for r in alerting_rules() if r["labels"]["severity"] == "critical"}
        assert critical == {"GapwatchMessageLoss", "GapwatchRecordsTruncated"}
