"""The mirror's shipped rules and dashboard on a real Prometheus scraping a real monitor of a
MirrorMaker 2 copy.

Two test-bed clusters, a real MirrorMaker 2 between them (``make_mirror``), an in-process
monitor of the copy that knows its source, and Debian's ``prometheus`` on loopback loading
both rule files as ``deploy/prometheus/prometheus.yml`` does, scraping and evaluating every
second. MirrorMaker is made to skip records (issue 14's mirror-loss scenario); then every
query of ``grafana/dashboards/gapwatch-mirror.json`` and of the mirror rules must return
series, and ``GapwatchMirroredTopicLoss`` must fire for origin ``mirror`` only.
"""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml
from mirror_support import mirror_config, wait_for_origins
from monitor_support import send_stamped, start_monitor, wait_until
from test_prometheus_stack import ops_server_or_skip

from gapwatch.testing.grafana import (
    default_values,
    load_dashboard,
    panel_queries,
    render,
    variable_queries,
)
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.prometheus import (
    SCRAPE_JOB,
    OpsServerError,
    PrometheusServer,
    find_binary,
    run_prometheus,
    strip_comparison,
)
from gapwatch.testing.pytest_plugin import MakeMirror, MakeTopic

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = REPO / "deploy/prometheus/prometheus.yml"
MIRROR_RULES = REPO / "deploy/prometheus/gapwatch-mirror-rules.yml"
MIRROR_DASHBOARD = REPO / "grafana/dashboards/gapwatch-mirror.json"
SKIPPED = range(50, 80)


def shipped_rule_files() -> list[Path]:
    """The rule files the shipped Prometheus configuration loads, as paths."""
    config = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    return [SHIPPED_CONFIG.parent / name for name in config["rule_files"]]


def mirror_rule_names() -> set[str]:
    groups = yaml.safe_load(MIRROR_RULES.read_text(encoding="utf-8"))["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"]}


def dashboard_and_rule_problems(prometheus: PrometheusServer) -> list[str]:
    """Every mirror panel query, template variable and mirror rule query that returns no
    series (or fails), and every loaded rule that is not healthy."""
    problems: list[str] = []
    dashboard = load_dashboard(MIRROR_DASHBOARD)
    values = default_values(rate_interval="1m", range_="5m")
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
    names = {rule["name"] for rule in rules}
    if not mirror_rule_names() <= names:
        problems.append(f"mirror rules not loaded: {mirror_rule_names() - names}")
    for rule in rules:
        if rule["health"] != "ok":
            problems.append(f"rule {rule['name']}: {rule['health']}: {rule.get('lastError')}")
        if rule["name"] in mirror_rule_names() and not prometheus.query(
            strip_comparison(rule["query"])
        ):
            problems.append(f"rule {rule['name']}: no series: {rule['query']}")
    return problems


async def test_mirror_dashboard_and_rules_have_data_and_the_loss_alert_names_the_origin(
    kafka: KafkaCluster,
    mirror_target: KafkaCluster,
    make_topic: MakeTopic,
    make_mirror: MakeMirror,
    tmp_path: Path,
) -> None:
    """MirrorMaker stopped, 30 records written, its offsets forgotten, restarted at
    ``latest``: once the copy's monitor has decided the gap's origin (mirror), every mirror
    dashboard query and mirror rule query returns series on a real Prometheus loading the
    shipped rule files, and ``GapwatchMirroredTopicLoss`` fires for that partition with
    ``origin="mirror"``, an annotation saying MirrorMaker skipped the records, and no
    alert for the other origins."""
    try:
        find_binary("prometheus")
    except OpsServerError as exc:
        ops_server_or_skip(exc)
    source = await make_topic(partitions=1)
    mirror = make_mirror(source.replace(".", r"\."))
    target = mirror.remote_topic(source)
    alias = mirror.settings.source_alias
    bootstrap = kafka.bootstrap_servers
    await send_stamped(bootstrap, source, 0, range(SKIPPED.start))
    await mirror.wait_caught_up(source)
    monitor = await start_monitor(
        mirror_config(
            mirror_target.bootstrap_servers,
            [target],
            f"g-{target}",
            sources={alias: bootstrap},
        )
    )
    servers = ExitStack()
    try:
        prometheus = await asyncio.to_thread(
            servers.enter_context,
            run_prometheus(
                workdir=tmp_path / "prometheus",
                scrape_targets=[f"127.0.0.1:{monitor.http_port}"],
                rule_files=shipped_rule_files(),
                interval="1s",
            ),
        )
        selector = f'gapwatch_mirror_missing_records_total{{topic="{target}",origin="mirror"}}'

        async def baseline_scraped() -> bool:
            """A zero sample before the loss, so that increase() sees the loss."""
            return bool(await asyncio.to_thread(prometheus.query, f"{selector} == 0"))

        await wait_until(baseline_scraped, within=60)

        assert await asyncio.to_thread(mirror.stop)
        await send_stamped(bootstrap, source, 0, SKIPPED)
        assert await mirror.forget()
        mirror.launch(offset_reset="latest")
        await mirror.wait_copying()
        await send_stamped(bootstrap, source, 0, range(SKIPPED.stop, SKIPPED.stop + 40))
        await mirror.wait_caught_up(source)
        (gap,) = await wait_for_origins(monitor, target, 1)
        assert (gap["first_seq"], gap["last_seq"], gap["origin"]) == (50, 79, "mirror")

        async def loss_scraped() -> bool:
            series = await asyncio.to_thread(prometheus.query, f"{selector} == {len(SKIPPED)}")
            return bool(series)

        await wait_until(loss_scraped, within=60)
        problems = await asyncio.to_thread(dashboard_and_rule_problems, prometheus)
        assert not problems, "\n".join(problems)

        async def loss_alerts() -> list[dict[str, Any]] | None:
            alerts = await asyncio.to_thread(prometheus.alerts)
            found = [a for a in alerts if a["labels"]["alertname"] == "GapwatchMirroredTopicLoss"]
            return found if any(a["state"] == "firing" for a in found) else None

        (alert,) = await wait_until(loss_alerts, within=60)
        assert alert["labels"] == {
            "alertname": "GapwatchMirroredTopicLoss",
            "severity": "warning",
            "origin": "mirror",
            "topic": target,
            "partition": "0",
            "source_cluster": alias,
            "instance": f"127.0.0.1:{monitor.http_port}",
            "job": SCRAPE_JOB,
        }
        annotations = alert["annotations"]
        assert annotations["summary"] == f"{target} partition 0 lost records, origin mirror"
        assert "MirrorMaker skipped them" in annotations["description"]
        assert f"of cluster {alias}" in annotations["description"]
    finally:
        try:
            await asyncio.to_thread(servers.close)
        finally:
            await monitor.stop()
