"""Paths and helpers shared by the tests of the shipped operations files (test_ops_*.py).

The tests check, without servers: the Prometheus rules and their promtool unit tests, the
example Prometheus and Alertmanager configurations (with promtool and amtool), the Grafana
dashboard and its provisioning, the Dockerfile (hadolint and its structure),
docker-compose.yml and deploy/install-ops-tools.sh. What needs running servers is in
tests/integration/test_prometheus_stack.py.

The external tools come from ``make ops-tools``; with ``CI=true`` a missing tool fails
the test instead of skipping it (:func:`require_tool`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from gapwatch.kafka.canary.settings import CanarySettings
from gapwatch.kafka.settings import KafkaSettings
from gapwatch.monitor.app import RunningMonitor
from gapwatch.monitor.config import (
    AlertingSettings,
    MirrorSettings,
    MirrorSource,
    MonitorConfig,
    WatchSettings,
)

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy/prometheus/gapwatch-rules.yml"
MIRROR_RULES = REPO / "deploy/prometheus/gapwatch-mirror-rules.yml"
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
        canary=CanarySettings(enabled=True),
        # "t" is a mirror copy (identity naming), so the gapwatch_mirror_* families show.
        mirror=MirrorSettings(
            sources=(MirrorSource("src", ("src-kafka:9092",)),), replication_policy="identity"
        ),
    ).validate()
    registry = CollectorRegistry()
    monitor = RunningMonitor(config, registry=registry)
    monitor.partitions.add("t", 0).note_read(0, 1.0)
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
