"""The mirror's alert rules (with promtool unit tests) and its Grafana dashboard."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from ops_files_support import (
    DASHBOARD,
    EXPORTED_METRICS,
    MIRROR_RULES,
    REPO,
    TOPIC_METRICS,
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
from gapwatch.testing.prometheus import strip_comparison

MIRROR_RULE_TESTS = REPO / "deploy/prometheus/gapwatch-mirror-rules.test.yml"
MIRROR_DASHBOARD = REPO / "grafana/dashboards/gapwatch-mirror.json"
_RANGE = re.compile(r"\[([^\]]+)\]")


def mirror_alerts() -> list[dict[str, Any]]:
    groups = load_yaml(MIRROR_RULES)["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


class TestMirrorRules:
    """deploy/prometheus/gapwatch-mirror-rules.yml."""

    def test_promtool_accepts_the_rules_and_their_unit_tests_pass(self) -> None:
        promtool = require_tool("promtool")
        checked = run(promtool, "check", "rules", str(MIRROR_RULES))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert f"SUCCESS: {len(mirror_alerts())} rules found" in checked.stdout
        tested = run(promtool, "test", "rules", str(MIRROR_RULE_TESTS))
        assert tested.returncode == 0, tested.stdout + tested.stderr

    def test_every_alert_is_tested_firing_and_silent(self) -> None:
        firing: set[str] = set()
        silent: set[str] = set()
        for case in load_yaml(MIRROR_RULE_TESTS)["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check["exp_alerts"] else silent).add(check["alertname"])
        names = {rule["alert"] for rule in mirror_alerts()}
        assert names == {"GapwatchMirroredTopicLoss", "GapwatchMirrorStalled"}
        assert names <= firing
        assert names <= silent

    def test_rules_use_exported_mirror_metrics_and_keep_the_conventions(self) -> None:
        """Each names a gapwatch_mirror_* metric the monitor exports, warns (the loss page
        is GapwatchMessageLoss), explains itself and links to /gaps of its partition."""
        for rule in mirror_alerts():
            used = metrics_in(rule["expr"])
            assert used, rule["alert"]
            assert used <= EXPORTED_METRICS, rule["alert"]
            assert all(name.startswith("gapwatch_mirror_") for name in used), rule["alert"]
            assert strip_comparison(rule["expr"]) != rule["expr"], rule["alert"]
            assert rule["labels"]["severity"] == "warning", rule["alert"]
            annotations = rule["annotations"]
            assert annotations["summary"], rule["alert"]
            assert len(annotations["description"]) > 40, rule["alert"]
            assert (
                "/gaps?topic={{ $labels.topic }}&partition={{ $labels.partition }}"
                in (annotations["gaps_url"])
            )

    def test_the_loss_alert_names_the_origin(self) -> None:
        (loss,) = [r for r in mirror_alerts() if r["alert"] == "GapwatchMirroredTopicLoss"]
        assert "{{ $labels.origin }}" in loss["annotations"]["summary"]


class TestMirrorDashboard:
    """grafana/dashboards/gapwatch-mirror.json: mirror loss apart from upstream loss,
    mirror duplicates, mirror lag."""

    def test_panels_show_each_origin_duplicates_and_lag(self) -> None:
        queries = panel_queries(load_dashboard(MIRROR_DASHBOARD))
        exprs = " ".join(q.expr for q in queries)
        for origin in ("mirror", "source", "unknown"):
            assert f'origin="{origin}"' in exprs
        assert 'made_by="mirror"' in exprs
        used = set().union(*(metrics_in(q.expr) for q in queries))
        assert used >= {
            "gapwatch_mirror_missing_records_total",
            "gapwatch_mirror_duplicate_records_total",
            "gapwatch_mirror_lag_records",
            "gapwatch_mirror_lag_seconds",
        }
        assert used <= EXPORTED_METRICS

    def test_every_query_parses_and_follows_the_variables(self, tmp_path: Path) -> None:
        dashboard = load_dashboard(MIRROR_DASHBOARD)
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids))
        for panel in iter_panels(dashboard):
            assert panel.get("targets"), panel["title"]
        queries = panel_queries(dashboard)
        for query in queries:
            assert 'instance=~"$instance"' in query.expr, query.panel_title
            for window in _RANGE.findall(query.expr):
                assert window in ("$__rate_interval", "$__range"), query.panel_title
            assert "$" not in render(query.expr, default_values())
        rules = [
            {"record": f"dashboard:query_{n}", "expr": render(q.expr, default_values())}
            for n, q in enumerate(queries)
        ]
        path = tmp_path / "queries.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "mirror", "rules": rules}]}))
        result = run(require_tool("promtool"), "check", "rules", str(path))
        assert result.returncode == 0, result.stdout + result.stderr

    def test_every_panel_queries_the_provisioned_prometheus(self) -> None:
        """Each target has an expression and the dashboard's datasource variable, as the
        main dashboard's do; the file sits beside it, so the same provider loads it."""
        dashboard = load_dashboard(MIRROR_DASHBOARD)
        assert MIRROR_DASHBOARD.parent == DASHBOARD.parent
        assert dashboard["uid"] != load_dashboard(DASHBOARD)["uid"]
        for panel in iter_panels(dashboard):
            for target in panel["targets"]:
                assert target["expr"].strip(), panel["title"]
                assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}

    def test_queries_follow_the_topic_variable_where_the_metric_has_a_topic(self) -> None:
        """A mirror series with a topic label is filtered by $topic (the lookups, counted per
        source cluster, have none) and every one by $instance."""
        selector = re.compile(r"\b(gapwatch_[a-z0-9_]+)\{([^}]*)\}")
        for query in panel_queries(load_dashboard(MIRROR_DASHBOARD)):
            matches = selector.findall(query.expr)
            assert matches, query.panel_title
            for name, matchers in matches:
                assert 'instance=~"$instance"' in matchers, query.panel_title
                if name in TOPIC_METRICS:
                    assert 'topic=~"$topic"' in matchers, query.panel_title

    def test_topic_and_instance_variables_query_gapwatch_series(self) -> None:
        """$topic lists the copies (topics with mirror series), $instance the monitors."""
        variables = {v.name: v for v in variable_queries(load_dashboard(MIRROR_DASHBOARD))}
        assert set(variables) == {"topic", "instance"}
        assert variables["topic"].label == "topic"
        assert variables["instance"].label == "instance"
        assert "gapwatch_mirror_" in variables["topic"].selector
        for variable in variables.values():
            assert metrics_in(variable.selector) <= EXPORTED_METRICS
