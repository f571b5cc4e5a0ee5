"""Issue 7's end-to-end proof: the shipped rules, dashboard and Alertmanager configuration
against a REAL gapwatch monitor watching a real topic with injected loss.

Nothing here is a stand-in: the local Kafka test bed, an in-process monitor
(:class:`~gapwatch.monitor.app.RunningMonitor`), ``gapwatch loadgen`` or hand-stamped
records, and Debian's ``prometheus`` and ``prometheus-alertmanager`` binaries on loopback.
Scrapes and rule evaluations run every second, the monitor confirms gaps after 1 s.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from monitor_support import get_json, send_stamped, wait_until
from ops_support import (
    RULES,
    compose_loadgen_argv,
    inner_drops,
    ops_stack,
    refused_url,
    run_loadgen,
)
from test_prometheus_stack import (
    ALERTMANAGER_CONFIG,
    PUSHED_ALERT_LABELS,
    assert_dashboard_and_rules_against,
    assert_one_page_per_gap,
    ops_server_or_skip,
)

from gapwatch.monitor.config import AlertingSettings, MetricsGranularity
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.prometheus import (
    AlertmanagerServer,
    OpsServerError,
    find_binary,
    run_alertmanager,
)
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.kafka

# The pushed alerts' hold in the Alertmanager test: short, so that the resolution is seen.
LOSS_HOLD = 12.0
# Slack for the resolution time: a re-post round, Alertmanager's API, our polling.
RESOLVE_SLACK = 10.0
_TEMPLATE_LABEL = re.compile(r"\{\{\s*\$labels\.(\w+)\s*\}\}")


def require_servers(*names: str) -> None:
    """Skip (or fail under CI) unless every named server binary is installed."""
    try:
        for name in names:
            find_binary(name)
    except OpsServerError as exc:
        ops_server_or_skip(exc)


def link_annotations() -> dict[str, str]:
    """Each shipped rule's link annotation (``gaps_url``) by alert name."""
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return {
        rule["alert"]: rule["annotations"]["gaps_url"]
        for group in groups
        for rule in group["rules"]
        if "gaps_url" in rule.get("annotations", {})
    }


def fill_labels(template: str, labels: dict[str, str]) -> str:
    """An annotation template with its ``{{ $labels.x }}`` replaced, as Prometheus does."""
    return _TEMPLATE_LABEL.sub(lambda match: labels[match.group(1)], template)


def timestamp(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 time (Alertmanager's or gapwatch's)."""
    # Alertmanager writes nanoseconds; Python before 3.11 parsed at most microseconds.
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    return datetime.fromisoformat(trimmed).timestamp()


async def am_alerts(alertmanager: AlertmanagerServer) -> list[dict[str, Any]]:
    """Alertmanager's alerts, fetched without blocking the monitor's event loop."""
    return await asyncio.to_thread(alertmanager.alerts)


class TestDashboardAndRulesOnARealMonitor:
    """Prometheus scraping a real monitor: every panel query and every rule has data."""

    @pytest.mark.parametrize("granularity", ["partition", "topic"])
    async def test_every_panel_query_and_rule_returns_series_and_loss_fires(
        self,
        kafka: KafkaCluster,
        make_topic: MakeTopic,
        tmp_path: Path,
        granularity: MetricsGranularity,
    ) -> None:
        """The demo's load generator (compose flags, more loss) writes to 3 partitions; once
        the monitor confirms the loss, every dashboard query and every rule's query return
        series, every rule is healthy, GapwatchMessageLoss fires, and each rule's link to
        the monitor's API answers: with the monitor's metrics per partition and per topic
        (then one series per topic, and the loss fires for the topic)."""
        require_servers("prometheus")
        topic = await make_topic(partitions=3)
        report_topic = f"{topic}-reports"
        await kafka.create_topic(report_topic, configs={"cleanup.policy": "compact,delete"})
        bootstrap = kafka.bootstrap_servers
        # A webhook sink that can never deliver, so the sink-failure rule and panel have a
        # failure to show (an idle sink's counter would only ever be 0).
        with refused_url() as dead_webhook:
            alerting = AlertingSettings(
                webhook_url=dead_webhook,
                sink_timeout=1.0,
                sink_max_retries=1,
                sink_backoff_initial=0.1,
                sink_backoff_max=0.2,
            )
            async with ops_stack(
                bootstrap,
                topic,
                tmp_path / "prometheus",
                alerting=alerting,
                report_topic=report_topic,
                metrics_granularity=granularity,
            ) as stack:
                await stack.wait_for_assigned(3)
                await stack.wait_for_scraped_partitions(
                    topic, 3 if granularity == "partition" else 1
                )
                truth = await run_loadgen(
                    compose_loadgen_argv(
                        [
                            f"--bootstrap-servers={bootstrap}",
                            f"--topic={topic}",
                            f"--report-topic={report_topic}",
                            "--report-interval=0.5",
                            "--count=900",
                            "--rate=600",
                            "--drop=0.02",
                            "--duplicate=0.01",
                            "--reorder=0.01",
                            "--seed=11",
                        ]
                    )
                )
                lost = inner_drops(truth)
                assert lost > 0, "the seed must drop records the monitor can confirm"

                async def loss_scraped() -> float | None:
                    series = await stack.query(
                        f'sum(gapwatch_missing_records_total{{topic="{topic}"}})'
                    )
                    value = float(series[0]["value"][1]) if series else 0.0
                    return value if value >= lost else None

                await wait_until(loss_scraped, within=60.0)

                async def webhook_failures_scraped() -> bool:
                    return bool(
                        await stack.query('gapwatch_alert_failures_total{sink="webhook"} > 0')
                    )

                await wait_until(webhook_failures_scraped, within=30.0)
                await asyncio.to_thread(assert_dashboard_and_rules_against, stack.prometheus.url)

                firing = [
                    alert
                    for alert in await asyncio.to_thread(stack.prometheus.alerts)
                    if alert["labels"]["alertname"] == "GapwatchMessageLoss"
                ]
                assert firing
                instance = f"127.0.0.1:{stack.monitor.http_port}"
                for alert in firing:
                    labels = alert["labels"]
                    assert labels["severity"] == "critical"
                    assert (labels["topic"], labels["instance"]) == (topic, instance)
                    if granularity == "partition":
                        assert labels["partition"] in {"0", "1", "2"}
                    else:
                        assert "partition" not in labels
                await self._assert_links_answer(firing[0]["labels"])

    async def _assert_links_answer(self, alert_labels: dict[str, str]) -> None:
        """Each rule's link, filled with a firing alert's labels, is a working API call;
        the loss page's link lists the confirmed gaps of its partition (of its topic when
        the alert has no partition label)."""
        # Prometheus fills a label the alert does not have with nothing.
        labels = {"partition": "", **alert_labels}
        async with httpx.AsyncClient(timeout=10.0) as http:
            for alertname, template in link_annotations().items():
                response = await http.get(fill_labels(template, labels))
                assert response.status_code == 200, (alertname, response.text)
        url = fill_labels(link_annotations()["GapwatchMessageLoss"], labels)
        async with httpx.AsyncClient(timeout=10.0) as http:
            gaps = (await http.get(url)).json()["gaps"]
        assert gaps
        if labels["partition"]:
            assert {(g["topic"], str(g["partition"]), g["state"]) for g in gaps} == {
                (labels["topic"], labels["partition"], "confirmed")
            }
        else:
            assert {(g["topic"], g["state"]) for g in gaps} == {(labels["topic"], "confirmed")}


class TestOnePagePerGapOnARealMonitor:
    """The monitor and Prometheus both notify a real Alertmanager with the shipped config."""

    async def test_each_confirmed_gap_pages_once_and_resolves_after_its_hold(
        self, kafka: KafkaCluster, make_topic: MakeTopic, tmp_path: Path
    ) -> None:
        """Two lost ranges on two partitions: exactly one active alert per gap (the pushed
        one, with the documented labels), the rule-based loss pages inhibited; each pushed
        alert resolves when its hold is over, not before, and then the rule-based page,
        still within its 5-minute window, is no longer inhibited (the documented reason the
        hold must outlast that window)."""
        require_servers("prometheus", "prometheus-alertmanager")
        topic = await make_topic(partitions=2)
        bootstrap = kafka.bootstrap_servers
        with run_alertmanager(workdir=tmp_path / "am", config_file=ALERTMANAGER_CONFIG) as am:
            alerting = AlertingSettings(
                alertmanager_urls=(am.url,), repost_interval=1.0, loss_hold=LOSS_HOLD
            )
            async with ops_stack(
                bootstrap,
                topic,
                tmp_path / "prometheus",
                alerting=alerting,
                alertmanager_url=am.url,
            ) as stack:
                await stack.wait_for_scraped_partitions(topic, 2)
                await send_stamped(bootstrap, topic, 0, [0, 1, 3, 4])
                await send_stamped(bootstrap, topic, 1, [0, 1, 2, 6, 7])

                async def confirmed() -> list[dict[str, Any]] | None:
                    gaps: list[dict[str, Any]] = (
                        await get_json(stack.monitor, "/gaps", state="confirmed")
                    )["gaps"]
                    return gaps if len(gaps) == 2 else None

                gaps = await wait_until(confirmed, within=30.0)
                gap_ids = sorted(g["id"] for g in gaps)

                async def both_kinds_in_alertmanager() -> list[dict[str, Any]] | None:
                    alerts = await am_alerts(am)
                    names = [a["labels"]["alertname"] for a in alerts]
                    is_complete = (
                        names.count("GapwatchGapConfirmed") == 2
                        and names.count("GapwatchMessageLoss") == 2
                        and all(
                            a["status"]["state"] == "suppressed"
                            for a in alerts
                            if a["labels"]["alertname"] == "GapwatchMessageLoss"
                        )
                    )
                    return alerts if is_complete else None

                alerts = await wait_until(both_kinds_in_alertmanager, within=60.0)
                await asyncio.to_thread(assert_one_page_per_gap, am.url, gap_ids)
                self._assert_pushed_alerts(alerts, gaps, topic)
                await self._assert_resolution(am, gaps)

    def _assert_pushed_alerts(
        self, alerts: list[dict[str, Any]], gaps: list[dict[str, Any]], topic: str
    ) -> None:
        """Active: exactly the pushed alerts, one per gap, with the documented labels;
        each rule-based page is inhibited by the pushed alert of its own partition."""
        active = [a for a in alerts if a["status"]["state"] == "active"]
        by_gap = {a["labels"]["gap_id"]: a for a in active}
        assert len(active) == len(by_gap) == 2
        assert set(by_gap) == {g["id"] for g in gaps}
        for gap in gaps:
            alert = by_gap[gap["id"]]
            assert set(alert["labels"]) == PUSHED_ALERT_LABELS
            assert alert["labels"] == {
                "alertname": "GapwatchGapConfirmed",
                "severity": "critical",
                "topic": topic,
                "partition": str(gap["partition"]),
                "producer": "p1",
                "gap_id": gap["id"],
            }
            assert abs(timestamp(alert["startsAt"]) - timestamp(gap["confirmed_at"])) < 1.0
        expected_range = {0: "2..2", 1: "3..5"}
        for gap in gaps:
            annotations = by_gap[gap["id"]]["annotations"]
            assert annotations["sequence_range"] == expected_range[gap["partition"]]
        for alert in alerts:
            if alert["labels"]["alertname"] != "GapwatchMessageLoss":
                continue
            partition = alert["labels"]["partition"]
            (inhibitor,) = alert["status"]["inhibitedBy"]
            source = next(a for a in active if a["fingerprint"] == inhibitor)
            assert source["labels"]["partition"] == partition

    async def _assert_resolution(
        self, alertmanager: AlertmanagerServer, gaps: list[dict[str, Any]]
    ) -> None:
        """Pushed alerts leave Alertmanager's list once confirmation + hold has passed
        (not before); the rule-based pages are then active."""
        ends = {g["id"]: timestamp(g["confirmed_at"]) + LOSS_HOLD for g in gaps}
        resolved_at: dict[str, float] = {}

        async def all_resolved() -> bool:
            pushed = {
                a["labels"]["gap_id"]
                for a in await am_alerts(alertmanager)
                if "gap_id" in a["labels"]
            }
            now = time.time()
            for gap_id in ends:
                if gap_id not in pushed:
                    resolved_at.setdefault(gap_id, now)
            return len(resolved_at) == len(ends)

        await wait_until(all_resolved, within=LOSS_HOLD + 3 * RESOLVE_SLACK)
        for gap_id, end in ends.items():
            # 0.5 s: the monitor and this test read the same clock, at slightly different times.
            assert resolved_at[gap_id] >= end - 0.5, "resolved before its hold was over"
            assert resolved_at[gap_id] <= end + RESOLVE_SLACK, "resolved long after its hold"

        async def rule_pages_active() -> bool:
            alerts = await am_alerts(alertmanager)
            states = {
                a["labels"]["partition"]: a["status"]["state"]
                for a in alerts
                if a["labels"]["alertname"] == "GapwatchMessageLoss"
            }
            return states == {"0": "active", "1": "active"}

        await wait_until(rule_pages_active, within=RESOLVE_SLACK)
