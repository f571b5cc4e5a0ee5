"""The Grafana dashboard and its provisioning agree with gapwatch's metrics and Prometheus."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from ops_files_support import (
    DASHBOARD,
    EXPORTED_METRICS,
    GRAFANA_DATASOURCE,
    GRAFANA_PROVIDER,
    PROMETHEUS_CONFIG,
    TOPIC_METRICS,
    compose_services,
    load_yaml,
    metrics_in,
    require_tool,
    run,
)

from gapwatch.testing.grafana import (
    default_values,
    iter_panels,
    load_dashboard,
    panel_queries,
    render,
    variable_queries,
)

_RANGE = re.compile(r"\[([^\]]+)\]")


class TestGrafanaDashboard:
    """grafana/dashboards/gapwatch.json and its provisioning files."""

    def test_every_panel_has_prometheus_targets(self) -> None:
        """No empty panel: each one has at least one target with an expression."""
        dashboard = load_dashboard(DASHBOARD)
        panels = list(iter_panels(dashboard))
        assert len(panels) >= 15
        for panel in panels:
            assert panel.get("targets"), panel["title"]
            for target in panel["targets"]:
                assert target["expr"].strip(), panel["title"]
                assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}

    def test_panel_ids_are_unique(self) -> None:
        """Grafana addresses panels by id; a duplicate makes one of them unreachable."""
        ids = [panel["id"] for panel in load_dashboard(DASHBOARD)["panels"]]
        assert len(ids) == len(set(ids))

    def test_every_expression_parses(self, tmp_path: Path) -> None:
        """Each rendered query is valid PromQL (promtool parses it as a recording rule)."""
        promtool = require_tool("promtool")
        values = default_values()
        rules = [
            {"record": f"dashboard:query_{index}", "expr": render(query.expr, values)}
            for index, query in enumerate(panel_queries(load_dashboard(DASHBOARD)))
        ]
        path = tmp_path / "dashboard-queries.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
        result = run(promtool, "check", "rules", str(path))
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"SUCCESS: {len(rules)} rules found" in result.stdout

    def test_every_metric_used_is_one_gapwatch_exports(self) -> None:
        """A renamed metric in the monitor cannot leave a silently empty panel behind."""
        for query in panel_queries(load_dashboard(DASHBOARD)):
            assert metrics_in(query.expr) <= EXPORTED_METRICS, query.panel_title

    def test_panels_cover_what_issue_7_asks_for(self) -> None:
        """Loss, open gaps, duplicates, late, unstamped/malformed, latency, lag, fleet, sinks."""
        used = set().union(*(metrics_in(q.expr) for q in panel_queries(load_dashboard(DASHBOARD))))
        assert used >= {
            "gapwatch_missing_records_total",
            "gapwatch_open_gaps",
            "gapwatch_duplicate_records_total",
            "gapwatch_late_records_total",
            "gapwatch_unstamped_records_total",
            "gapwatch_malformed_records_total",
            "gapwatch_end_to_end_latency_seconds",
            "gapwatch_consumer_lag_records",
            "gapwatch_streams",
            "gapwatch_partitions_assigned",
            "gapwatch_alert_failures_total",
        }

    def test_ranges_follow_the_time_picker(self) -> None:
        """Range vectors use $__rate_interval or $__range, never a hard-coded window."""
        for query in panel_queries(load_dashboard(DASHBOARD)):
            for window in _RANGE.findall(query.expr):
                assert window in ("$__rate_interval", "$__range"), query.panel_title

    def test_queries_follow_the_topic_and_instance_variables(self) -> None:
        """Every gapwatch selector is filtered by $instance, and by $topic where it has one."""
        selector = re.compile(r"\b(gapwatch_[a-z0-9_]+|up)\{([^}]*)\}")
        for query in panel_queries(load_dashboard(DASHBOARD)):
            matches = selector.findall(query.expr)
            assert matches, query.panel_title
            for name, matchers in matches:
                assert 'instance=~"$instance"' in matchers, query.panel_title
                family = re.sub(r"_bucket$", "", name)
                if family in TOPIC_METRICS:
                    assert 'topic=~"$topic"' in matchers, query.panel_title

    def test_topic_and_instance_variables_query_gapwatch_series(self) -> None:
        """The template variables list the topics and instances gapwatch reports."""
        variables = {v.name: v for v in variable_queries(load_dashboard(DASHBOARD))}
        assert set(variables) == {"topic", "instance"}
        assert variables["topic"].label == "topic"
        assert variables["instance"].label == "instance"
        for variable in variables.values():
            assert metrics_in(variable.selector) <= EXPORTED_METRICS

    def test_every_variable_in_a_query_has_a_value(self) -> None:
        """Rendering leaves no `$` behind (a misspelt variable would raise KeyError)."""
        for query in panel_queries(load_dashboard(DASHBOARD)):
            assert "$" not in render(query.expr, default_values())

    def test_provisioning_points_at_prometheus_and_the_dashboard_folder(self) -> None:
        """The datasource is the compose Prometheus; the provider reads the mounted folder."""
        (datasource,) = load_yaml(GRAFANA_DATASOURCE)["datasources"]
        assert datasource["type"] == "prometheus"
        assert datasource["url"] == "http://prometheus:9090"
        scrape_interval = load_yaml(PROMETHEUS_CONFIG)["global"]["scrape_interval"]
        assert datasource["jsonData"]["timeInterval"] == scrape_interval
        (provider,) = load_yaml(GRAFANA_PROVIDER)["providers"]
        mounts = compose_services()["grafana"]["volumes"]
        assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
        assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
