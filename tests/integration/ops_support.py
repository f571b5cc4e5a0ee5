"""The operations stack of issue 7 for tests: a real monitor on a real topic, scraped by a
real Prometheus that evaluates the shipped rules (and, optionally, notifies Alertmanager).

The monitor runs in-process (:class:`~gapwatch.monitor.app.RunningMonitor`, as in
``monitor_support``); Prometheus runs on loopback through
:func:`gapwatch.testing.prometheus.run_prometheus`, whose blocking start and stop happen in
a worker thread so the monitor's event loop keeps consuming meanwhile.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from monitor_support import monitor_config, start_monitor, wait_until

from gapwatch.kafka.canary.settings import CanarySettings
from gapwatch.monitor.app import RunningMonitor
from gapwatch.monitor.config import AlertingSettings, MetricsGranularity
from gapwatch.testing.prometheus import PrometheusServer, run_prometheus

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy/prometheus/gapwatch-rules.yml"
COMPOSE = REPO / "docker-compose.yml"


@contextmanager
def refused_url() -> Iterator[str]:
    """An http:// URL on loopback where every connection is refused.

    The port stays bound (but not listening) for the duration, so nothing else can take it
    and start answering: a sink pointed at it fails every attempt, reliably.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    finally:
        sock.close()


@dataclass(frozen=True, slots=True)
class OpsStack:
    """A running monitor and the Prometheus that scrapes it."""

    monitor: RunningMonitor
    prometheus: PrometheusServer

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query, without blocking the monitor's event loop."""
        return await asyncio.to_thread(self.prometheus.query, expr)

    async def wait_for_scraped_partitions(self, topic: str, partitions: int) -> None:
        """Until Prometheus holds a sample of ``gapwatch_missing_records_total`` for every
        partition of ``topic`` (so ``increase()`` has a baseline before any loss); at metrics
        granularity ``topic`` pass 1, the one series of the topic."""

        async def scraped() -> bool:
            series = await self.query(f'gapwatch_missing_records_total{{topic="{topic}"}}')
            return len(series) == partitions

        await wait_until(scraped, within=60.0)

    async def wait_for_assigned(self, partitions: int) -> None:
        """Until Prometheus has scraped the monitor owning ``partitions`` partitions. At
        topic granularity one partition already makes the topic's series, and a partition
        assigned later starts at the log end (``start_from: latest``), so records written
        before it would never be read."""

        async def assigned() -> bool:
            series = await self.query("sum(gapwatch_partitions_assigned)")
            return bool(series) and float(series[0]["value"][1]) >= partitions

        await wait_until(assigned, within=60.0)


@asynccontextmanager
async def ops_stack(
    bootstrap: str,
    topic: str,
    workdir: Path,
    *,
    alerting: AlertingSettings,
    report_topic: str | None = None,
    alertmanager_url: str | None = None,
    metrics_granularity: MetricsGranularity = "partition",
) -> AsyncIterator[OpsStack]:
    """A ready monitor watching ``topic`` (grace period 1 s, metrics at
    ``metrics_granularity``) with its canary on (on a topic of its own, so the dashboard's
    canary row and rules have series), and a Prometheus that scrapes it every second with
    the shipped rules; both stopped on exit."""
    config = monitor_config(bootstrap, [topic], f"g-{topic}", grace_period=1.0)
    http = dataclasses.replace(config.http, metrics_granularity=metrics_granularity)
    canary = CanarySettings(enabled=True, topic=f"__gapwatch_canary_{topic}")
    config = dataclasses.replace(config, alerting=alerting, http=http, canary=canary)
    if report_topic is not None:
        reports = dataclasses.replace(config.reports, enabled=True, topic=report_topic)
        config = dataclasses.replace(config, reports=reports)
    monitor = await start_monitor(config)
    servers = ExitStack()
    try:
        prometheus = await asyncio.to_thread(
            servers.enter_context,
            run_prometheus(
                workdir=workdir,
                scrape_targets=[f"127.0.0.1:{monitor.http_port}"],
                rule_files=[RULES],
                alertmanager_url=alertmanager_url,
                interval="1s",
            ),
        )
        stack = OpsStack(monitor=monitor, prometheus=prometheus)

        async def ready() -> bool:
            return bool(await stack.query("gapwatch_ready == 1"))

        await wait_until(ready, within=60.0)
        yield stack
    finally:
        try:
            await asyncio.to_thread(servers.close)
        finally:
            await monitor.stop()


def compose_loadgen_argv(overrides: Sequence[str]) -> list[str]:
    """The compose file's ``gapwatch loadgen`` command with ``overrides`` replacing its flags
    of the same names (and ``--duration`` dropped when ``--count`` is given)."""
    services = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    command: list[str] = list(services["loadgen"]["command"])
    replaced = {flag.split("=", 1)[0] for flag in overrides}
    if "--count" in replaced:
        replaced.add("--duration")
    kept = [arg for arg in command if arg.split("=", 1)[0] not in replaced]
    return kept + list(overrides)


async def run_loadgen(argv: Sequence[str], *, within: float = 120.0) -> dict[str, Any]:
    """Run ``gapwatch <argv>`` in a subprocess; its JSON truth (what it injected)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gapwatch",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]
    truth: dict[str, Any] = json.loads(stdout)
    return truth


def inner_drops(truth: dict[str, Any]) -> int:
    """Dropped records with a sent record of their stream before and after them: the loss
    the monitor can confirm from sequence numbers alone. A stream whose first records were
    dropped is first seen at a later sequence, which is its baseline (rule R2: the monitor
    cannot tell a producer that began there from records it never saw), so a dropped head
    is not counted; a dropped tail needs a producer report."""
    total = 0
    for stream in truth["streams"]:
        dropped = set(stream["dropped"])
        sent = [seq for seq in range(stream["last_seq"] + 1) if seq not in dropped]
        if sent:
            total += sum(1 for seq in dropped if sent[0] < seq < sent[-1])
    return total
