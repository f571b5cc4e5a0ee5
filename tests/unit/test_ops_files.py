"""The shipped operations files are valid, agree with each other and with gapwatch's metrics.

Checked here without servers: the Prometheus rules and their promtool unit tests, the
example Prometheus and Alertmanager configurations (with promtool and amtool), the Grafana
dashboard and its provisioning, the Dockerfile (hadolint and its structure),
docker-compose.yml and deploy/install-ops-tools.sh. What needs running servers is in
tests/integration/test_prometheus_stack.py.

The external tools come from ``make ops-tools``; with ``CI=true`` a missing tool fails
the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from gapwatch.cli import build_parser
from gapwatch.commands.loadgen import config_from_args
from gapwatch.monitor.app import RunningMonitor
from gapwatch.monitor.config import (
    AlertingSettings,
    HttpSettings,
    KafkaSettings,
    MonitorConfig,
    WatchSettings,
)
from gapwatch.monitor.config_sources import FIELDS, load_config
from gapwatch.testing.grafana import (
    default_values,
    iter_panels,
    load_dashboard,
    panel_queries,
    render,
    variable_queries,
)
from gapwatch.testing.prometheus import strip_comparison

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy/prometheus/gapwatch-rules.yml"
RULE_TESTS = REPO / "deploy/prometheus/gapwatch-rules.test.yml"
PROMETHEUS_CONFIG = REPO / "deploy/prometheus/prometheus.yml"
ALERTMANAGER_CONFIG = REPO / "deploy/alertmanager/alertmanager.yml"
DASHBOARD = REPO / "grafana/dashboards/gapwatch.json"
GRAFANA_DATASOURCE = REPO / "grafana/provisioning/datasources/prometheus.yml"
GRAFANA_PROVIDER = REPO / "grafana/provisioning/dashboards/gapwatch.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE = REPO / "docker-compose.yml"
INSTALLER = REPO / "deploy/install-ops-tools.sh"
# The brokers as the compose services reach them (the INTERNAL listener).
KAFKA_INTERNAL = ("kafka-1:19092", "kafka-2:19092", "kafka-3:19092")


def exported_families() -> dict[str, tuple[str, frozenset[str]]]:
    """What a real monitor exports: (type, label names) by exposed metric name.

    Read from the collectors of a :class:`RunningMonitor` built (never started: building
    opens no connection) with both alert sinks and one assigned partition, so the lists
    below cannot drift from the code. Counters are named with their ``_total``.
    """
    config = MonitorConfig(
        kafka=KafkaSettings(bootstrap_servers=("kafka:9092",)),
        watch=WatchSettings(topics=("t",)),
        alerting=AlertingSettings(
            alertmanager_urls=("http://alertmanager:9093",), webhook_url="http://hooks:80/x"
        ),
    ).validate()
    registry = CollectorRegistry()
    monitor = RunningMonitor(config, registry=registry)
    monitor.partitions.add("t", 0).last_record_ts = 1.0
    families = {}
    for family in registry.collect():
        name = f"{family.name}_total" if family.type == "counter" else family.name
        labels = frozenset(label for s in family.samples for label in s.labels) - {"le"}
        families[name] = (family.type, labels)
    return families


_EXPORTED = exported_families()
# Per-partition series (labels topic and partition), histograms (per topic) and everything
# a selector may name (`up` is Prometheus's own).
PARTITION_METRICS = frozenset(
    name for name, (_, labels) in _EXPORTED.items() if {"topic", "partition"} <= labels
)
TOPIC_METRICS = frozenset(name for name, (_, labels) in _EXPORTED.items() if "topic" in labels)
HISTOGRAMS = frozenset(name for name, (kind, _) in _EXPORTED.items() if kind == "histogram")
EXPORTED_METRICS = frozenset(_EXPORTED) | {"up"}

_GAPWATCH_METRIC = re.compile(r"\b(gapwatch_[a-z0-9_]+)")
_UP_METRIC = re.compile(r"(?<![\w:])up\s*\{")
_RANGE = re.compile(r"\[([^\]]+)\]")


def require_tool(name: str) -> str:
    """The path of ``name`` (on PATH or next to this Python); skip, or fail under CI."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is not None:
        return found
    message = f"{name} is not installed: run `make ops-tools` (deploy/install-ops-tools.sh)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def run(*argv: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run a tool with a bounded time; its output is kept for the assertion message."""
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def metrics_in(expr: str) -> set[str]:
    """The metric families an expression reads (histogram series folded to their family)."""
    names = set()
    for name in _GAPWATCH_METRIC.findall(expr):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        names.add(base if base in HISTOGRAMS else name)
    if _UP_METRIC.search(expr):
        names.add("up")
    return names


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alerting_rules() -> list[dict[str, Any]]:
    groups = load_yaml(RULES)["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = load_yaml(COMPOSE)["services"]
    return services


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
        assert len(linked) == len(gap_metrics)
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
        assert "SUCCESS: 1 rule files found" in result.stdout

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
        assert config["rule_files"] == [RULES.name]


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


def image_environment() -> dict[str, str]:
    """The variables the Dockerfile's ENV instructions set in the image."""
    environment = {}
    for keyword, args in dockerfile_instructions():
        if keyword == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                environment[key] = value
    return environment


def dockerfile_instructions() -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            yield keyword.upper(), args.strip()


class TestDockerfile:
    """Dockerfile and .dockerignore."""

    def test_hadolint_passes(self) -> None:
        """hadolint finds nothing to complain about."""
        result = run(require_tool("hadolint"), str(DOCKERFILE))
        assert result.returncode == 0, result.stdout + result.stderr

    def test_is_multi_stage_on_python_3_11_slim(self) -> None:
        """A build stage and a runtime stage, both from python:3.11-slim."""
        instructions = list(dockerfile_instructions())
        froms = [args for keyword, args in instructions if keyword == "FROM"]
        assert len(froms) >= 2
        assert ("ARG", "PYTHON_IMAGE=python:3.11-slim") in instructions
        assert all(args.startswith("${PYTHON_IMAGE}") for args in froms)
        assert any(keyword == "COPY" and "--from=build" in args for keyword, args in instructions)

    def test_runs_as_a_non_root_user(self) -> None:
        """The final stage switches to an unprivileged user."""
        instructions = list(dockerfile_instructions())
        last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
        users = [args for keyword, args in instructions[last_from:] if keyword == "USER"]
        assert users, "no USER in the final stage"
        user = users[-1].split(":")[0]
        assert user not in ("root", "0")

    def test_healthcheck_probes_healthz_with_python_on_the_exposed_port(self) -> None:
        """HEALTHCHECK uses the standard library (no curl) against /healthz."""
        instructions = dict(dockerfile_instructions())
        healthcheck = instructions["HEALTHCHECK"]
        assert '"python", "-c"' in healthcheck
        assert "/healthz" in healthcheck
        assert "curl" not in healthcheck
        assert f"GAPWATCH_HTTP_PORT={instructions['EXPOSE']}" in instructions["ENV"]
        assert instructions["EXPOSE"] == str(HttpSettings().port)

    def test_entrypoint_is_gapwatch(self) -> None:
        """`docker run IMAGE <command>` runs `gapwatch <command>`; the default is the monitor."""
        instructions = dict(dockerfile_instructions())
        assert json.loads(instructions["ENTRYPOINT"]) == ["gapwatch"]
        assert json.loads(instructions["CMD"]) == ["monitor"]

    def test_build_context_holds_what_the_dockerfile_copies(self) -> None:
        """.dockerignore excludes everything except the sources COPY needs."""
        allowed = {
            line[1:].rstrip("/")
            for line in DOCKERIGNORE.read_text().splitlines()
            if line.startswith("!")
        }
        assert DOCKERIGNORE.read_text().splitlines().count("*") == 1
        for keyword, args in dockerfile_instructions():
            if keyword == "COPY" and not args.startswith("--from"):
                *sources, _ = args.split()
                assert set(sources) <= allowed, args


class TestDockerCompose:
    """docker-compose.yml: the whole stack, parsed (and validated by Docker where possible)."""

    def test_docker_compose_validates_the_file(self) -> None:
        """`docker compose config` accepts the file where the compose plugin exists."""
        docker = shutil.which("docker")
        if docker is None or run(docker, "compose", "version").returncode != 0:
            pytest.skip("the docker compose plugin is not installed; the file is parsed below")
        result = run(docker, "compose", "--file", str(COMPOSE), "config", "--quiet")
        assert result.returncode == 0, result.stdout + result.stderr

    def test_has_every_service_of_the_stack(self) -> None:
        """Three brokers, topic set-up, monitor, loadgen, Prometheus, Alertmanager, Grafana."""
        assert set(compose_services()) == {
            "kafka-1",
            "kafka-2",
            "kafka-3",
            "kafka-init",
            "monitor",
            "loadgen",
            "prometheus",
            "alertmanager",
            "grafana",
        }

    def test_every_image_is_pinned(self) -> None:
        """Images carry an explicit version tag (no `latest`); Kafka is apache/kafka:4.3.1."""
        for name, service in compose_services().items():
            image = service["image"]
            repository, _, tag = image.rpartition(":")
            assert repository, name
            assert tag not in ("", "latest"), name
            if name.startswith("kafka"):
                assert image == "apache/kafka:4.3.1", name

    def test_kafka_is_three_kraft_nodes_with_rf_3_and_min_isr_2(self) -> None:
        """Three combined broker+controller nodes voting together, durable defaults."""
        services = compose_services()
        brokers = [services[f"kafka-{n}"] for n in (1, 2, 3)]
        envs = [broker["environment"] for broker in brokers]
        assert sorted(env["KAFKA_NODE_ID"] for env in envs) == [1, 2, 3]
        voters = {env["KAFKA_CONTROLLER_QUORUM_VOTERS"] for env in envs}
        assert voters == {"1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}
        assert len({env["CLUSTER_ID"] for env in envs}) == 1
        for n, env in enumerate(envs, start=1):
            assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
            assert f"INTERNAL://kafka-{n}:19092" in env["KAFKA_ADVERTISED_LISTENERS"]
            assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3
            assert env["KAFKA_MIN_INSYNC_REPLICAS"] == 2
            assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 3
        command = services["kafka-init"]["command"]
        assert "--replication-factor=3" in command
        assert "--config=min.insync.replicas=2" in command

    def test_dependencies_name_existing_services(self) -> None:
        """depends_on only names services of the file, and the stack starts in order."""
        services = compose_services()
        for name, service in services.items():
            depends_on = service.get("depends_on", [])
            assert set(depends_on) <= set(services), name
        assert services["monitor"]["depends_on"]["kafka-init"] == {
            "condition": "service_completed_successfully"
        }
        assert set(services["kafka-init"]["depends_on"]) == {"kafka-1", "kafka-2", "kafka-3"}

    def test_published_ports_are_loopback_and_distinct(self) -> None:
        """Nothing is published beyond localhost, and no two services share a host port."""
        host_ports = []
        for name, service in compose_services().items():
            for mapping in service.get("ports", []):
                host, host_port, _ = str(mapping).split(":")
                assert host == "127.0.0.1", name
                host_ports.append(host_port)
        assert len(host_ports) == len(set(host_ports))
        assert {"8571", "9090", "9093", "3000"} <= set(host_ports)

    def test_monitor_command_and_environment_load_with_the_real_cli(self) -> None:
        """The monitor's command parses with gapwatch's own parser, and the image's and the
        service's environment load through the monitor's own config sources into a valid
        config; every GAPWATCH_* variable is one the monitor reads (unknown ones would be
        silently ignored, so a typo would go unnoticed)."""
        monitor = compose_services()["monitor"]
        args = build_parser().parse_args(monitor["command"])
        assert args.handler is not None
        environment = {**image_environment(), **monitor["environment"]}
        gapwatch_vars = {key for key in environment if key.startswith("GAPWATCH_")}
        assert gapwatch_vars <= {spec.env for spec in FIELDS}
        config = load_config(args, {key: str(value) for key, value in environment.items()})
        assert config.kafka.bootstrap_servers == KAFKA_INTERNAL
        assert config.watch.topics == ("gapwatch-demo",)
        assert config.watch.start_from == "earliest"
        assert (config.http.host, config.http.port) == ("0.0.0.0", 8571)
        assert config.reports.enabled
        assert config.alerting.alertmanager_urls == ("http://alertmanager:9093",)
        # Links in pushed alerts must open from the host, where the port is published.
        assert config.alerting.external_url == "http://localhost:8571"

    def test_gapwatch_services_use_the_local_build(self) -> None:
        """Monitor and load generator run the image built from this repository's Dockerfile."""
        services = compose_services()
        for name in ("monitor", "loadgen"):
            assert services[name]["build"] == "."
            assert services[name]["image"] == "gapwatch:local"
            assert services[name]["command"][0] == ("monitor" if name == "monitor" else "loadgen")
        assert services["loadgen"]["healthcheck"] == {"disable": True}

    def test_loadgen_command_parses_and_injects_a_small_loss(self) -> None:
        """The load generator's flags are the real `gapwatch loadgen`'s; it drops a few records."""
        services = compose_services()
        args = build_parser().parse_args(services["loadgen"]["command"])
        assert callable(args.handler)
        config = config_from_args(args)  # validates, as `gapwatch loadgen` does
        assert config.topics == ("gapwatch-demo",)
        assert 0 < config.faults.drop <= 0.01
        assert config.acks == "all"
        assert config.idempotent
        monitor_env = services["monitor"]["environment"]
        assert config.report_topic == monitor_env["GAPWATCH_REPORT_TOPIC"]
        assert tuple(config.bootstrap_servers.split(",")) == KAFKA_INTERNAL

    def test_prometheus_and_alertmanager_use_the_shipped_configs(self) -> None:
        """The compose services mount deploy/ read-only and load the files tested above."""
        services = compose_services()
        assert "./deploy/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
        assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
        assert "./deploy/alertmanager:/etc/alertmanager:ro" in services["alertmanager"]["volumes"]
        assert (
            "--config.file=/etc/alertmanager/alertmanager.yml"
            in services["alertmanager"]["command"]
        )


class TestInstallScript:
    """deploy/install-ops-tools.sh."""

    def test_is_valid_bash(self) -> None:
        """`bash -n` parses the script."""
        result = run("bash", "-n", str(INSTALLER))
        assert result.returncode == 0, result.stderr

    def test_does_nothing_when_the_tools_are_installed(self) -> None:
        """With every tool present it exits 0 at once, without touching apt."""
        for tool in ("promtool", "prometheus", "amtool", "prometheus-alertmanager"):
            require_tool(tool)
        result = run("bash", str(INSTALLER))
        assert result.returncode == 0, result.stderr
        assert result.stdout == ""
        assert result.stderr == ""
