"""The monitor's pushed alerts in a real Alertmanager running the shipped configuration."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from monitor_support import get_json, monitor_config, send_stamped, wait_until
from prometheus_client import CollectorRegistry
from test_prometheus_stack import (
    ALERTMANAGER_CONFIG,
    PUSHED_ALERT_LABELS,
    assert_one_page_per_gap,
    ops_server_or_skip,
)

from gapwatch.monitor.app import RunningMonitor
from gapwatch.monitor.config import AlertingSettings
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.prometheus import OpsServerError, find_binary, run_alertmanager
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.kafka


async def test_pushed_alert_shows_up_with_its_labels_and_resolves(
    kafka: KafkaCluster, make_topic: MakeTopic, tmp_path: Path
) -> None:
    """Each confirmed gap is one active alert in Alertmanager with the documented labels
    (one page per gap), and it leaves Alertmanager's active list once its hold is over."""
    try:
        find_binary("prometheus-alertmanager")
    except OpsServerError as exc:
        ops_server_or_skip(exc)
    topic = await make_topic(partitions=2)
    bootstrap = kafka.bootstrap_servers
    with run_alertmanager(workdir=tmp_path / "am", config_file=ALERTMANAGER_CONFIG) as am:
        base = monitor_config(bootstrap, [topic], f"g-{topic}")
        config = dataclasses.replace(
            base,
            alerting=AlertingSettings(
                alertmanager_urls=(am.url,), repost_interval=1.0, loss_hold=8.0
            ),
        )
        monitor = RunningMonitor(config, registry=CollectorRegistry())
        await monitor.start()
        try:
            for partition in range(2):
                await send_stamped(bootstrap, topic, partition, [0, 1, 3, 4])

            async def confirmed() -> list[dict[str, Any]] | None:
                gaps: list[dict[str, Any]] = (await get_json(monitor, "/gaps", state="confirmed"))[
                    "gaps"
                ]
                return gaps if len(gaps) == 2 else None

            gaps = await wait_until(confirmed, within=30.0)

            async def in_alertmanager() -> list[dict[str, Any]] | None:
                alerts = await asyncio.to_thread(am.alerts)
                pushed = [a for a in alerts if "gap_id" in a["labels"]]
                return pushed if len(pushed) == 2 else None

            pushed = await wait_until(in_alertmanager, within=20.0)
            for alert in pushed:
                assert set(alert["labels"]) == PUSHED_ALERT_LABELS
                assert alert["labels"]["alertname"] == "GapwatchGapConfirmed"
                assert alert["status"]["state"] == "active"
                assert alert["annotations"]["sequence_range"] == "2..2"
            await asyncio.to_thread(assert_one_page_per_gap, am.url, [g["id"] for g in gaps])

            async def resolved() -> bool:
                alerts = await asyncio.to_thread(am.alerts)
                return not [a for a in alerts if "gap_id" in a["labels"]]

            await wait_until(resolved, within=30.0)
        finally:
            await monitor.stop()
