"""The durability audit on the 3-node test bed: topics created with each risky configuration
get exactly their findings in ``gapwatch audit --durability``, ``/topics`` and
``gapwatch_durability_finding``; RF 3 + min ISR 2 + unclean election off gets none; a config
change shows within one refresh; a producer writing with acks=1 is named; a stopped broker
shows in the ISR findings until it is back."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from monitor_support import get_json, metric_value, monitor_config, start_monitor, wait_until
from prometheus_client import CollectorRegistry

from gapwatch.cli import main
from gapwatch.core.durability import FINDING_NAMES
from gapwatch.monitor.config import DurabilitySettings, ReportSettings
from gapwatch.producer import ReportConfig, StampedProducer
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.kafka

REFRESH = 3.0
# One refresh, plus the time a Metadata and a DescribeConfigs request take on a busy CI
# machine, plus the broker's propagation of an altered config.
WITHIN_ONE_REFRESH = REFRESH + 7.0

# (replication factor, topic configs) -> exactly the findings the audit must name.
RISKY: dict[str, tuple[int, dict[str, str], set[str]]] = {
    "safe": (3, {"min.insync.replicas": "2", "unclean.leader.election.enable": "false"}, set()),
    "rf2-min-isr-1": (2, {"min.insync.replicas": "1"}, {"rf_below_3", "min_isr_1"}),
    "min-isr-1": (3, {"min.insync.replicas": "1"}, {"min_isr_1"}),
    "min-isr-equals-rf": (3, {"min.insync.replicas": "3"}, {"min_isr_not_below_rf"}),
    "unclean": (
        3,
        {"min.insync.replicas": "2", "unclean.leader.election.enable": "true"},
        {"unclean_election_enabled"},
    ),
}


async def make_risky_topics(kafka3: KafkaCluster, make_topic: MakeTopic) -> dict[str, str]:
    """One fresh topic per entry of :data:`RISKY`, by entry name."""
    names = {}
    for kind, (rf, configs, _) in RISKY.items():
        names[kind] = await make_topic(
            cluster=kafka3, partitions=2, replication_factor=rf, configs=configs
        )
    return names


def expected(topics: dict[str, str]) -> dict[str, set[str]]:
    return {topics[kind]: RISKY[kind][2] for kind in RISKY}


def findings_by_topic(body: dict[str, Any]) -> dict[str, set[str]]:
    return {t["topic"]: {f["name"] for f in t["findings"]} for t in body["topics"]}


async def audit_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``gapwatch audit --durability`` (in a thread: it runs its own event loop)."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["audit", "--durability", *argv])
    out, err = capsys.readouterr()
    return code, out, err


class TestAuditCommand:
    async def test_exit_1_with_exactly_each_topics_findings_and_0_without(
        self, kafka3: KafkaCluster, make_topic: MakeTopic, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Every risky topic is named with exactly its findings (exit 1); the safe topic
        alone exits 0; a missing topic is an error (exit 2), never created by the audit."""
        topics = await make_risky_topics(kafka3, make_topic)
        bootstrap = ["--bootstrap-servers", kafka3.bootstrap_servers, "--timeout", "60"]
        topic_flags = [flag for name in topics.values() for flag in ("--topic", name)]

        code, out, _ = await audit_cli(capsys, *bootstrap, *topic_flags, "--json")
        assert code == 1
        body = json.loads(out)
        assert findings_by_topic(body) == expected(topics)
        rf2 = next(t for t in body["topics"] if t["topic"] == topics["rf2-min-isr-1"])
        assert rf2["settings"]["replication_factor"] == 2
        assert rf2["settings"]["config_sources"]["min.insync.replicas"] == "topic"

        code, out, _ = await audit_cli(capsys, *bootstrap, "--topic", topics["min-isr-1"])
        assert code == 1
        assert "min_isr_1" in out
        assert "fix: Set min.insync.replicas=2" in out

        code, out, _ = await audit_cli(capsys, *bootstrap, "--topic", topics["safe"])
        assert code == 0
        assert out.strip().endswith("1 topic(s) audited: no findings")

        missing = f"{topics['safe']}-missing"
        code, _, err = await audit_cli(capsys, *bootstrap, "--topic", missing)
        assert code == 2
        assert f"topic {missing!r} does not exist" in err
        assert missing not in await kafka3_topics(kafka3)


async def kafka3_topics(kafka3: KafkaCluster) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka3.bootstrap_servers)
    await admin.start()
    try:
        return await admin.list_topics()
    finally:
        await admin.close()


async def alter_topic(kafka3: KafkaCluster, topic: str, configs: dict[str, str]) -> None:
    """Set ``topic``'s configs (AlterConfigs replaces the topic's whole override set)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka3.bootstrap_servers)
    await admin.start()
    try:
        (response,) = await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)]
        )
        assert all(resource[0] == 0 for resource in response.resources), response
    finally:
        await admin.close()


async def scraped_findings(monitor: Any, topics: dict[str, str]) -> dict[str, set[str]]:
    """The findings at 1 in the monitor's /metrics; every finding of the table must be
    there for every topic, at 0 or 1."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{monitor.http_port}") as http:
        text = (await http.get("/metrics")).text
    holding: dict[str, set[str]] = {}
    for topic in topics.values():
        series = [
            line
            for line in text.splitlines()
            if line.startswith("gapwatch_durability_finding{") and f'topic="{topic}"' in line
        ]
        assert len(series) == len(FINDING_NAMES), (topic, series)
        holding[topic] = {
            name
            for name in FINDING_NAMES
            if metric_value(text, "gapwatch_durability_finding", topic=topic, finding=name) == 1
        }
    return holding


class TestMonitorAudit:
    async def test_topics_metric_config_change_and_an_acks_1_producer(
        self, kafka3: KafkaCluster, make_topic: MakeTopic
    ) -> None:
        """/topics and the metric agree with the table for every topic; raising min ISR to
        2 clears min_isr_1 within one refresh; a stamped producer with acks=1 is named on
        the topic it writes to (and one with acks=all and idempotence is not)."""
        topics = await make_risky_topics(kafka3, make_topic)
        report_topic = f"{topics['safe']}-reports"
        config = monitor_config(
            kafka3.bootstrap_servers, list(topics.values()), f"{topics['safe']}-g", reports=True
        )
        config = dataclasses.replace(
            config,
            reports=ReportSettings(topic=report_topic, enabled=True),
            durability=DurabilitySettings(refresh=REFRESH),
        ).validate()
        monitor = await start_monitor(config)
        try:

            async def audited() -> dict[str, Any] | None:
                body: dict[str, Any] = await get_json(monitor, "/topics")
                return body if len(body["topics"]) == len(topics) else None

            body = await wait_until(audited, within=60.0)
            assert body["error"] is None
            assert body["refresh_interval"] == REFRESH
            assert findings_by_topic(body) == expected(topics)
            assert await scraped_findings(monitor, topics) == expected(topics)

            loose = topics["min-isr-1"]
            await alter_topic(kafka3, loose, {"min.insync.replicas": "2"})

            async def tightened() -> bool:
                return findings_by_topic(await get_json(monitor, "/topics"))[loose] == set()

            await wait_until(tightened, within=WITHIN_ONE_REFRESH)
            assert (await scraped_findings(monitor, topics))[loose] == set()

            await self._assert_producers_named(kafka3, monitor, topics["safe"], report_topic)
        finally:
            await monitor.stop()

    async def _assert_producers_named(
        self, kafka3: KafkaCluster, monitor: Any, topic: str, report_topic: str
    ) -> None:
        reports = ReportConfig(topic=report_topic, interval_s=0.3, timeout_s=10)
        weak = StampedProducer(
            bootstrap_servers=kafka3.bootstrap_servers,
            producer_id="acks-one",
            acks=1,
            reports=reports,
            registry=CollectorRegistry(),
        )
        strong = StampedProducer(
            bootstrap_servers=kafka3.bootstrap_servers,
            producer_id="acks-all",
            acks="all",
            enable_idempotence=True,
            reports=reports,
            registry=CollectorRegistry(),
        )
        async with weak, strong:
            for producer in (weak, strong):
                await asyncio.gather(
                    *[await producer.send(topic, b"x", partition=i % 2) for i in range(10)]
                )

            async def named() -> dict[str, Any] | None:
                body = await get_json(monitor, "/topics")
                audit = next(t for t in body["topics"] if t["topic"] == topic)
                return audit if len(audit["producers"]) == 2 else None

            audit = await wait_until(named, within=30.0)
            assert audit["producers"] == [
                {"producer": "acks-all", "acks": "all", "idempotence": True},
                {"producer": "acks-one", "acks": "1", "idempotence": False},
            ]
            assert [(f["name"], f["detail"]) for f in audit["findings"]] == [
                ("producer_acks_not_all", "producers acks-one (acks=1)"),
                ("producer_not_idempotent", "producers acks-one"),
            ]
            scraped = await scraped_findings(monitor, {"safe": topic})
            assert scraped[topic] == {"producer_acks_not_all", "producer_not_idempotent"}


class TestPlacementFindings:
    async def test_a_stopped_broker_shows_in_the_isr_findings_until_it_is_back(
        self, kafka3: KafkaCluster, make_topic: MakeTopic, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Broker 3 stopped (controlled shutdown leaves every ISR at once): the RF 3 topic
        with min ISR 2 is under-replicated, the one with min ISR 3 is also under min ISR;
        once the broker is back and caught up, the safe topic has no finding again."""
        safe = await make_topic(
            cluster=kafka3, partitions=2, replication_factor=3, configs=RISKY["safe"][1]
        )
        strict = await make_topic(
            cluster=kafka3,
            partitions=2,
            replication_factor=3,
            configs=RISKY["min-isr-equals-rf"][1],
        )
        argv = ["--bootstrap-servers", kafka3.bootstrap_servers, "--timeout", "30", "--json"]
        argv += ["--topic", safe, "--topic", strict]

        async def findings() -> dict[str, set[str]]:
            # While a broker leaves or rejoins, a request to it may fail (exit 2): the
            # answer then matches neither wait below, which asks again.
            code, out, err = await audit_cli(capsys, *argv)
            if code == 2:
                return {safe: {f"audit failed: {err.strip()}"}, strict: set()}
            return findings_by_topic(json.loads(out))

        assert await kafka3_stop(kafka3, 3)
        try:

            async def degraded() -> dict[str, set[str]] | None:
                found = await findings()
                return found if "under_replicated" in found[safe] else None

            found = await wait_until(degraded, within=60.0)
            assert found[safe] == {"under_replicated"}
            assert found[strict] == {"min_isr_not_below_rf", "under_min_isr", "under_replicated"}
        finally:
            await asyncio.to_thread(kafka3.restart_node, 3)

        async def healed() -> bool:
            return (await findings())[safe] == set()

        await wait_until(healed, within=60.0)


async def kafka3_stop(kafka3: KafkaCluster, node_id: int) -> bool:
    """Stop ``node_id`` gracefully and wait until its process has exited."""
    if not kafka3.stop_node(node_id):
        return False
    return await asyncio.to_thread(kafka3.wait_node_exit, node_id, 60.0)
