"""The Prometheus rules (with their promtool unit tests) and the example Prometheus config."""

from __future__ import annotations

from ops_files_support import (
    EXPORTED_METRICS,
    MIRROR_RULES,
    PROMETHEUS_CONFIG,
    REPO,
    RULE_TESTS,
    RULES,
    alerting_rules,
    compose_services,
    load_yaml,
    metrics_in,
    require_tool,
    run,
)

from gapwatch.testing.prometheus import strip_comparison


class TestPrometheusRules:
    """deploy/prometheus/gapwatch-rules.yml and its promtool unit tests."""

    def test_promtool_accepts_the_rules(self) -> None:
        """`promtool check rules` finds every rule valid."""
        result = run(require_tool("promtool"), "check", "rules", str(RULES))
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"SUCCESS: {len(alerting_rules())} rules found" in result.stdout

    def test_promtool_rule_unit_tests_pass(self) -> None:
        """`promtool test rules` runs the fire/silent cases of every alert and all pass."""
        result = run(require_tool("promtool"), "test", "rules", str(RULE_TESTS))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout

    def test_every_alert_has_a_firing_and_a_silent_unit_test(self) -> None:
        """Each alert is tested both where it must fire and where it must stay silent."""
        firing: set[str] = set()
        silent: set[str] = set()
        for case in load_yaml(RULE_TESTS)["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check["exp_alerts"] else silent).add(check["alertname"])
        names = {rule["alert"] for rule in alerting_rules()}
        assert names - firing == set(), "alerts never tested firing"
        assert names - silent == set(), "alerts never tested silent"

    def test_only_loss_and_truncation_page(self) -> None:
        """Confirmed loss and truncation are critical; everything else is a warning."""
        severities = {rule["alert"]: rule["labels"]["severity"] for rule in alerting_rules()}
        assert set(severities.values()) == {"critical", "warning"}
        critical = {name for name, severity in severities.items() if severity == "critical"}
        assert critical == {"GapwatchMessageLoss", "GapwatchRecordsTruncated"}

    def test_every_alert_explains_itself(self) -> None:
        """Every alert has a summary and a description."""
        for rule in alerting_rules():
            annotations = rule.get("annotations", {})
            assert annotations.get("summary"), rule["alert"]
            assert len(annotations.get("description", "")) > 40, rule["alert"]

    def test_gap_alerts_link_to_the_gaps_of_their_partition(self) -> None:
        """Alerts about lost, duplicated or late records link to /gaps of the partition;
        skipped records (not gaps, so not in /gaps) link to /skipped. The end-to-end test
        opens each link on a real monitor."""
        gap_metrics = {
            "gapwatch_missing_records_total",
            "gapwatch_truncated_records_total",
            "gapwatch_duplicate_records_total",
            "gapwatch_late_records_total",
        }
        link = "/gaps?topic={{ $labels.topic }}&partition={{ $labels.partition }}"
        linked = [rule for rule in alerting_rules() if metrics_in(rule["expr"]) & gap_metrics]
        # Every gap metric has a linked alert (the canary's loss alert is a second one on
        # gapwatch_missing_records_total).
        assert set().union(*(metrics_in(rule["expr"]) for rule in linked)) >= gap_metrics
        for rule in linked:
            url = rule["annotations"]["gaps_url"]
            assert url.startswith("http://{{ $labels.instance }}/gaps?"), rule["alert"]
            assert link in url, rule["alert"]
        (skipped,) = [
            rule
            for rule in alerting_rules()
            if "gapwatch_skipped_records_total" in metrics_in(rule["expr"])
        ]
        assert skipped["annotations"]["gaps_url"] == (
            "http://{{ $labels.instance }}/skipped?" + link.removeprefix("/gaps?")
        )

    def test_rules_use_only_metrics_gapwatch_exports(self) -> None:
        """Every metric a rule reads is exported by the monitor (or is Prometheus's `up`)."""
        for rule in alerting_rules():
            assert metrics_in(rule["expr"]) <= EXPORTED_METRICS, rule["alert"]

    def test_rules_cover_what_issue_7_asks_for(self) -> None:
        """Loss, truncation, duplicates, late, skipped, down, not ready, lag, sinks: all watched."""
        used = set().union(*(metrics_in(rule["expr"]) for rule in alerting_rules()))
        assert used >= {
            "gapwatch_missing_records_total",
            "gapwatch_truncated_records_total",
            "gapwatch_duplicate_records_total",
            "gapwatch_late_records_total",
            "gapwatch_skipped_records_total",
            "up",
            "gapwatch_up",
            "gapwatch_ready",
            "gapwatch_consumer_lag_records",
            "gapwatch_alert_failures_total",
        }

    def test_every_expression_is_a_query_compared_with_a_number(self) -> None:
        """The end-to-end test runs each rule's query without its comparison."""
        for rule in alerting_rules():
            query = strip_comparison(rule["expr"])
            assert query != rule["expr"].strip(), rule["alert"]

    def test_down_alert_selects_the_scrape_job_of_the_example_config(self) -> None:
        """GapwatchDown looks at `up` of the job the example Prometheus config defines."""
        jobs = [job["job_name"] for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]]
        down = next(rule for rule in alerting_rules() if rule["alert"] == "GapwatchDown")
        assert f'up{{job="{jobs[0]}"}}' in down["expr"]


class TestPrometheusConfig:
    """deploy/prometheus/prometheus.yml, the example (and docker-compose) configuration."""

    def test_promtool_accepts_the_config_and_its_rules(self) -> None:
        """`promtool check config` accepts it and finds the rule file."""
        result = run(require_tool("promtool"), "check", "config", str(PROMETHEUS_CONFIG))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS: 2 rule files found" in result.stdout

    def test_it_scrapes_the_monitor_and_alerts_through_alertmanager(self) -> None:
        """The scrape target and the Alertmanager are compose services, on their ports."""
        config = load_yaml(PROMETHEUS_CONFIG)
        services = compose_services()
        (job,) = config["scrape_configs"]
        targets = [t for sc in job["static_configs"] for t in sc["targets"]]
        port = str(services["monitor"]["environment"]["GAPWATCH_HTTP_PORT"])
        assert targets == [f"monitor:{port}"]
        (alertmanagers,) = config["alerting"]["alertmanagers"]
        assert alertmanagers["static_configs"][0]["targets"] == ["alertmanager:9093"]
        assert "alertmanager" in services
        # Both shipped rule files, loaded from the directory docker-compose mounts.
        assert config["rule_files"] == [RULES.name, MIRROR_RULES.name]
        for name in config["rule_files"]:
            assert (PROMETHEUS_CONFIG.parent / name).is_file()
        mounts = services["prometheus"]["volumes"]
        assert f"./{PROMETHEUS_CONFIG.parent.relative_to(REPO)}:/etc/prometheus:ro" in mounts
