"""The shipped Prometheus rules, Alertmanager configuration and dashboard on real servers.

Real ``prometheus`` and ``prometheus-alertmanager`` binaries run on loopback through
:mod:`gapwatch.testing.prometheus`. What is proven here today:

- the launchers work (against a stand-in exporter, :class:`TestLaunchersWithAFakeExporter`;
  that is a test of the launchers and of the rule-to-Alertmanager path, not of the
  dashboard, which needs the real monitor);
- the shipped Alertmanager configuration inhibits the rule-based loss page while the
  monitor's pushed per-gap alert for the same topic and partition fires, and only then;
- every dashboard query is accepted by Prometheus's query API.

The end-to-end proof of issue 7 (a real monitor on a real topic with injected loss) is in
``test_ops_end_to_end.py``; it calls :func:`assert_dashboard_and_rules_against` and
:func:`assert_one_page_per_gap` below.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Collection, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from gapwatch.testing.grafana import (
    default_values,
    load_dashboard,
    panel_queries,
    render,
    variable_queries,
)
from gapwatch.testing.prometheus import (
    SCRAPE_JOB,
    AlertmanagerServer,
    OpsServerError,
    PrometheusServer,
    find_binary,
    run_alertmanager,
    run_prometheus,
    strip_comparison,
    wait_until,
)

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy/prometheus/gapwatch-rules.yml"
ALERTMANAGER_CONFIG = REPO / "deploy/alertmanager/alertmanager.yml"
DASHBOARD = REPO / "grafana/dashboards/gapwatch.json"

# Labels issue 6 gives every pushed per-gap alert.
PUSHED_ALERT_LABELS = frozenset(
    {"alertname", "severity", "topic", "partition", "producer", "gap_id"}
)


def assert_dashboard_and_rules_against(
    prometheus_url: str,
    *,
    rate_interval: str = "1m",
    range_: str = "5m",
    loss_alert_timeout: float = 120.0,
) -> None:
    """Issue 7's proof for the dashboard and the rules, against a Prometheus that scrapes a
    REAL gapwatch monitor watching a real topic with injected loss.

    Start that Prometheus with :func:`run_prometheus` (``rule_files=[RULES]``, scrape
    interval 1s) and call this after a few scrapes, once the monitor has confirmed a gap.
    It asserts, listing every failure at once:

    1. every panel query of the dashboard, with ``$topic`` and ``$instance`` set to all
       values and Grafana's macros replaced, succeeds and returns at least one series;
    2. every template variable's ``label_values`` selector returns series with its label;
    3. every rule loaded from the rule file is healthy, and every alerting rule's query
       without its comparison returns at least one series;
    4. ``GapwatchMessageLoss`` reaches ``firing`` within ``loss_alert_timeout`` seconds.
    """
    prometheus = PrometheusServer(url=prometheus_url)
    problems: list[str] = []
    dashboard = load_dashboard(DASHBOARD)
    values = default_values(rate_interval=rate_interval, range_=range_)
    for query in panel_queries(dashboard):
        expr = render(query.expr, values)
        try:
            if not prometheus.query(expr):
                problems.append(f"panel {query.panel_title!r} {query.ref_id}: no series: {expr}")
        except OpsServerError as exc:
            problems.append(f"panel {query.panel_title!r} {query.ref_id}: {exc}")
    for variable in variable_queries(dashboard):
        selector = render(variable.selector, values)
        series = prometheus.query(f"count by ({variable.label}) ({selector})")
        if not [s for s in series if s["metric"].get(variable.label)]:
            problems.append(f"variable ${variable.name}: no {variable.label} in {selector}")
    rules = prometheus.rules()
    if not rules:
        problems.append("Prometheus has loaded no rules")
    for rule in rules:
        if rule["health"] != "ok":
            problems.append(
                f"rule {rule['name']}: health {rule['health']}: {rule.get('lastError')}"
            )
        if rule["type"] == "alerting" and not prometheus.query(strip_comparison(rule["query"])):
            problems.append(f"rule {rule['name']}: its query returns no series: {rule['query']}")
    assert not problems, "\n".join(problems)

    def loss_alert_firing() -> bool | None:
        alerts = prometheus.alerts()
        return (
            any(
                a["labels"]["alertname"] == "GapwatchMessageLoss" and a["state"] == "firing"
                for a in alerts
            )
            or None
        )

    wait_until(loss_alert_firing, timeout=loss_alert_timeout, what="GapwatchMessageLoss firing")


def assert_one_page_per_gap(alertmanager_url: str, gap_ids: Collection[str]) -> None:
    """Issue 7's Alertmanager proof: exactly one notification-worthy alert per confirmed gap.

    ``gap_ids`` are the confirmed gaps (from the monitor's ``/gaps``). The active (neither
    inhibited nor silenced) critical alerts must be exactly the monitor's pushed alerts,
    one per gap id, carrying the documented labels; every rule-based loss page for the
    same topic and partition must be inhibited.

    Storm control (docs/alerting.md): beyond a partition's per-gap limit, further gaps are
    summarised by one ``GapwatchGapsOverflow`` alert of that partition (no ``gap_id``);
    each such gap counts as paged by it, and nothing else may page.
    """
    alerts = AlertmanagerServer(url=alertmanager_url).alerts()
    active_critical = [
        a for a in alerts if a["labels"].get("severity") == "critical" and _state(a) == "active"
    ]
    overflow = [a for a in active_critical if a["labels"]["alertname"] == "GapwatchGapsOverflow"]
    paging = [a for a in active_critical if a not in overflow]
    summarised = sum(int(a["annotations"]["gaps"]) for a in overflow)
    paged = sorted(a["labels"].get("gap_id", "<none>") for a in paging)
    assert len(paged) == len(set(paged)), paged
    assert set(paged) <= set(gap_ids), paged
    assert len(paged) + summarised == len(gap_ids)
    for alert in paging:
        assert set(alert["labels"]) >= PUSHED_ALERT_LABELS, alert["labels"]
    paged_partitions = {(a["labels"]["topic"], a["labels"]["partition"]) for a in paging}
    for alert in alerts:
        labels = alert["labels"]
        if labels["alertname"] == "GapwatchMessageLoss":
            assert (labels["topic"], labels["partition"]) in paged_partitions, labels
            assert alert["status"]["inhibitedBy"], labels


def _state(alert: dict[str, Any]) -> str:
    state: str = alert["status"]["state"]
    return state


def ops_server_or_skip(error: OpsServerError) -> None:
    """A missing binary skips the test outside CI and fails it under CI (``CI=true``)."""
    message = f"{error} (make ops-tools)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[AlertmanagerServer]:
    """A real Alertmanager with the shipped configuration."""
    try:
        find_binary("prometheus-alertmanager")
    except OpsServerError as exc:
        ops_server_or_skip(exc)
    with run_alertmanager(workdir=tmp_path / "alertmanager", config_file=ALERTMANAGER_CONFIG) as am:
        yield am


class _FakeExporter(BaseHTTPRequestHandler):
    """Serves a few gapwatch-like series; the missing-records counter grows every scrape."""

    scrapes = 0

    def do_GET(self) -> None:
        type(self).scrapes += 1
        body = (
            "# TYPE gapwatch_missing_records_total counter\n"
            f'gapwatch_missing_records_total{{topic="orders",partition="0"}} {self.scrapes}\n'
            "# TYPE gapwatch_up gauge\n"
            "gapwatch_up 1\n"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def fake_exporter() -> Iterator[str]:
    """host:port of a stand-in exporter on loopback. Not a gapwatch monitor."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeExporter)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _alert(alertname: str, *, partition: str, ends_in: timedelta, **labels: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "labels": {
            "alertname": alertname,
            "severity": "critical",
            "topic": "orders",
            "partition": partition,
            **labels,
        },
        "annotations": {"summary": f"{alertname} on orders/{partition}"},
        "startsAt": (now - timedelta(minutes=1)).isoformat(),
        "endsAt": (now + ends_in).isoformat(),
    }


def _pushed_gap_alert(partition: str, *, ends_in: timedelta = timedelta(minutes=5)) -> Any:
    """What the monitor's Alertmanager sink sends for one confirmed gap (issue 6)."""
    return _alert(
        "GapwatchGapConfirmed",
        partition=partition,
        ends_in=ends_in,
        producer="producer-1",
        gap_id=f"orders-{partition}-g1",
    )


def _rule_loss_alert(partition: str) -> Any:
    """What Prometheus sends for GapwatchMessageLoss on one partition."""
    return _alert(
        "GapwatchMessageLoss",
        partition=partition,
        ends_in=timedelta(minutes=5),
        job=SCRAPE_JOB,
        instance="gw-1:8571",
    )


def _states(alertmanager: AlertmanagerServer) -> dict[tuple[str, str], str]:
    return {
        (a["labels"]["alertname"], a["labels"]["partition"]): _state(a)
        for a in alertmanager.alerts()
    }


def _wait_for_states(
    alertmanager: AlertmanagerServer, expected: dict[tuple[str, str], str]
) -> None:
    """Wait until the alerts Alertmanager holds, and their states, are exactly ``expected``."""
    wait_until(
        lambda: True if _states(alertmanager) == expected else None,
        timeout=15,
        what=f"Alertmanager to hold exactly {expected}",
    )


class TestShippedAlertmanagerConfig:
    """deploy/alertmanager/alertmanager.yml in a real Alertmanager."""

    def test_pushed_gap_alert_inhibits_the_rule_based_loss_page_of_its_partition(
        self, alertmanager: AlertmanagerServer
    ) -> None:
        """One lost range pages once: the precise pushed alert silences the rule's page."""
        alertmanager.post_alerts([_pushed_gap_alert("0"), _rule_loss_alert("0")])
        _wait_for_states(
            alertmanager,
            {("GapwatchGapConfirmed", "0"): "active", ("GapwatchMessageLoss", "0"): "suppressed"},
        )
        assert_one_page_per_gap(alertmanager.url, ["orders-0-g1"])

    def test_rule_based_page_of_another_partition_still_pages(
        self, alertmanager: AlertmanagerServer
    ) -> None:
        """Inhibition is per topic and partition, never topic-wide."""
        alertmanager.post_alerts([_pushed_gap_alert("0"), _rule_loss_alert("1")])
        _wait_for_states(
            alertmanager,
            {("GapwatchGapConfirmed", "0"): "active", ("GapwatchMessageLoss", "1"): "active"},
        )

    def test_rule_based_page_returns_once_the_pushed_alert_resolves(
        self, alertmanager: AlertmanagerServer
    ) -> None:
        """Only a firing pushed alert inhibits: without it the rule-based page is the fallback."""
        alertmanager.post_alerts([_pushed_gap_alert("0"), _rule_loss_alert("0")])
        _wait_for_states(
            alertmanager,
            {("GapwatchGapConfirmed", "0"): "active", ("GapwatchMessageLoss", "0"): "suppressed"},
        )
        alertmanager.post_alerts([_pushed_gap_alert("0", ends_in=timedelta(seconds=-1))])
        _wait_for_states(alertmanager, {("GapwatchMessageLoss", "0"): "active"})


class TestLaunchersWithAFakeExporter:
    """The launchers, with a stand-in exporter. NOT proof of the dashboard or the monitor."""

    def test_prometheus_scrapes_evaluates_the_rules_and_notifies_alertmanager(
        self, tmp_path: Path, fake_exporter: str, alertmanager: AlertmanagerServer
    ) -> None:
        """Scrape, rule evaluation and delivery to Alertmanager all work on loopback."""
        with run_prometheus(
            workdir=tmp_path / "prometheus",
            scrape_targets=[fake_exporter],
            rule_files=[RULES],
            alertmanager_url=alertmanager.url,
        ) as prometheus:
            wait_until(
                lambda: True if [t for t in prometheus.targets() if t["health"] == "up"] else None,
                timeout=30,
                what="the target to be up",
            )
            (series,) = prometheus.query("gapwatch_missing_records_total")
            assert series["metric"]["job"] == SCRAPE_JOB
            assert series["metric"]["topic"] == "orders"
            rule_names = {rule["name"] for rule in prometheus.rules()}
            assert "GapwatchMessageLoss" in rule_names
            # Every rule of the file is loaded (counted from the file, which grows).
            shipped = yaml.safe_load(RULES.read_text())["groups"]
            assert len(rule_names) == sum(len(group["rules"]) for group in shipped)
            wait_until(
                lambda: True if all(r["health"] == "ok" for r in prometheus.rules()) else None,
                timeout=30,
                what="every rule evaluated without error",
            )

            def am_has_loss_page() -> bool | None:
                return True if ("GapwatchMessageLoss", "0") in _states(alertmanager) else None

            wait_until(am_has_loss_page, timeout=60, what="GapwatchMessageLoss in Alertmanager")
            firing = [a for a in prometheus.alerts() if a["state"] == "firing"]
            assert [a["labels"]["alertname"] for a in firing] == ["GapwatchMessageLoss"]

    def test_every_dashboard_query_is_accepted_by_prometheus(self, tmp_path: Path) -> None:
        """Prometheus's query API accepts each rendered panel query (data or not)."""
        try:
            find_binary("prometheus")
        except OpsServerError as exc:
            ops_server_or_skip(exc)
        queries = panel_queries(load_dashboard(DASHBOARD))
        with run_prometheus(workdir=tmp_path / "prometheus") as prometheus:
            for query in queries:
                result = prometheus.query(render(query.expr, default_values()))
                assert isinstance(result, list), query.panel_title
        assert len(queries) >= 15

    def test_a_failed_start_reports_the_server_log(self, tmp_path: Path) -> None:
        """A configuration the server rejects raises at once, with the server's own words."""
        try:
            find_binary("prometheus-alertmanager")
        except OpsServerError as exc:
            ops_server_or_skip(exc)
        broken = tmp_path / "broken.yml"
        broken.write_text("route: {receiver: nowhere}\nreceivers: []\n")
        with (
            pytest.raises(OpsServerError, match="nowhere"),
            run_alertmanager(workdir=tmp_path / "am", config_file=broken, startup_timeout=20),
        ):
            pass
