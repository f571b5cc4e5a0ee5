"""The monitor's durability audit without Kafka: producer write settings from reports, the
kept facts, /topics, gapwatch_durability_* and the durability_refresh setting."""

from __future__ import annotations

import httpx
import pytest
from api_contract_support import TOPIC, built_monitor, feed_durability
from prometheus_client import CollectorRegistry, generate_latest

from gapwatch.core.durability import FINDING_NAMES, PartitionPlacement, TopicSettings
from gapwatch.core.model import ProducerReport, WriteSettings
from gapwatch.errors import ConfigError
from gapwatch.kafka.topic_facts import TopicFactsReader
from gapwatch.monitor.app import RunningMonitor
from gapwatch.monitor.config_sources import load_config
from gapwatch.monitor.durability import DurabilityAudit
from gapwatch.monitor.metrics.durability import DurabilityCollector
from gapwatch.monitor.state.producer_writes import ProducerWritesBook

NOW = 1_700_000_000.0
ACKS_1 = WriteSettings(acks="1", idempotence=False)
SAFE_WRITES = WriteSettings(acks="all", idempotence=True)


def report(
    producer: str = "p", epoch: int = 1, *, partition: int = 0, final: bool = False
) -> ProducerReport:
    return ProducerReport(producer, epoch, "orders", partition, 5, 5, final=final)


def settings(topic: str, *, min_isr: int = 2, isr: tuple[int, ...] = (1, 2, 3)) -> TopicSettings:
    placement = PartitionPlacement(0, leader=1, replicas=(1, 2, 3), isr=isr)
    return TopicSettings(topic, min_isr, False, (placement,))


def unreachable_audit(book: ProducerWritesBook | None = None) -> DurabilityAudit:
    """An audit whose reader points at a closed loopback port: every refresh fails."""
    reader = TopicFactsReader(
        {"bootstrap_servers": "127.0.0.1:9", "request_timeout_ms": 2000}, principal="User:x"
    )
    return DurabilityAudit(
        reader=reader,
        writes=book or ProducerWritesBook(),
        topics=("orders",),
        topic_pattern=None,
        refresh=60.0,
        timeout=10.0,
        clock=lambda: NOW,
    )


class TestProducerWritesBook:
    def test_a_reporting_producer_writes_to_its_topic(self) -> None:
        book = ProducerWritesBook()
        book.note(report(), ACKS_1, at=NOW)
        (writer,) = book.writers("orders", NOW)
        assert (writer.producer, writer.settings) == ("p", ACKS_1)
        assert book.writers("other", NOW) == []

    def test_one_entry_per_producer_its_newest_epoch_wins(self) -> None:
        """A restarted producer (new epoch) is judged by its new settings."""
        book = ProducerWritesBook()
        book.note(report(epoch=1), ACKS_1, at=NOW)
        book.note(report(epoch=2), SAFE_WRITES, at=NOW - 5)
        assert [w.settings for w in book.writers("orders", NOW)] == [SAFE_WRITES]

    def test_a_final_report_ends_the_producer(self) -> None:
        """A producer that closed cleanly no longer writes there."""
        book = ProducerWritesBook()
        book.note(report(partition=0), ACKS_1, at=NOW)
        book.note(report(partition=0, final=True), ACKS_1, at=NOW + 1)
        assert book.writers("orders", NOW + 1) == []

    def test_a_silent_producer_ages_out_after_the_window(self) -> None:
        book = ProducerWritesBook(window=60.0)
        book.note(report(), ACKS_1, at=NOW)
        assert book.writers("orders", NOW + 60) != []
        assert book.writers("orders", NOW + 61) == []
        book.forget_older_than(NOW + 61)
        assert len(book) == 0

    def test_reports_from_other_partitions_never_move_the_time_back(self) -> None:
        """Partitions of one producer report in any order; the newest time counts."""
        book = ProducerWritesBook(window=60.0)
        book.note(report(partition=0), ACKS_1, at=NOW + 50)
        book.note(report(partition=1), ACKS_1, at=NOW)
        assert book.writers("orders", NOW + 100) != []

    def test_reports_that_say_nothing_are_not_recorded(self) -> None:
        book = ProducerWritesBook()
        book.note(report(), WriteSettings(), at=NOW)
        assert len(book) == 0

    def test_bounded_per_topic_and_in_topics(self) -> None:
        """A flood of producer ids or topics keeps the newest within the bounds."""
        book = ProducerWritesBook(max_per_topic=3, max_topics=2)
        for i in range(10):
            book.note(report(f"p{i}"), ACKS_1, at=NOW + i)
        assert [w.producer for w in book.writers("orders", NOW + 10)] == ["p7", "p8", "p9"]
        for topic in ("a", "b", "c"):
            book.note(ProducerReport("q", 1, topic, 0, 1, 1), ACKS_1, at=NOW)
        assert book.writers("orders", NOW) == []
        assert book.writers("a", NOW) == []
        assert len(book.writers("c", NOW)) == 1


class TestDurabilityAudit:
    def test_findings_combine_kept_facts_and_current_producers(self) -> None:
        """Facts from the last refresh, producers as they report now."""
        audit = unreachable_audit()
        audit.record({"orders": settings("orders")}, NOW)
        assert audit.audits()[0].findings == ()
        audit.writes.note(report(), ACKS_1, at=NOW)
        names = [f.name for f in audit.audits()[0].findings]
        assert names == ["producer_acks_not_all", "producer_not_idempotent"]

    async def test_a_failed_refresh_is_counted_and_keeps_the_last_facts(self) -> None:
        """No broker answers: the error is shown, the findings stay as last read."""
        audit = unreachable_audit()
        audit.record({"orders": settings("orders", min_isr=1)}, NOW)
        try:
            assert await audit.refresh_once() is False
        finally:
            await audit.stop()
        body = audit.topics_json()
        assert audit.failures == 1
        assert body["error"]
        assert body["audited_at"] == NOW
        assert [f["name"] for f in body["topics"][0]["findings"]] == ["min_isr_1"]


class TestMetrics:
    def test_every_finding_of_the_table_is_a_series_per_topic(self) -> None:
        """1 where a finding holds, 0 for every other name of the table."""
        audit = unreachable_audit()
        audit.record(
            {"a": settings("a", min_isr=1), "b": settings("b", isr=(1,))},
            NOW,
        )
        registry = CollectorRegistry()
        registry.register(DurabilityCollector(audit))
        values = {
            (s.labels["topic"], s.labels["finding"]): s.value
            for family in registry.collect()
            if family.name == "gapwatch_durability_finding"
            for s in family.samples
        }
        assert len(values) == 2 * len(FINDING_NAMES)
        holding = {key for key, value in values.items() if value == 1.0}
        assert holding == {
            ("a", "min_isr_1"),
            ("b", "under_min_isr"),
            ("b", "under_replicated"),
        }
        assert registry.get_sample_value("gapwatch_durability_refreshes_total") == 1.0
        assert registry.get_sample_value("gapwatch_durability_refresh_failures_total") == 0.0
        audited = registry.get_sample_value("gapwatch_durability_audited_timestamp_seconds")
        assert audited == NOW


class TestTopicsEndpoint:
    async def test_topics_shows_settings_producers_and_findings(self) -> None:
        """/topics of a monitor built from its config, its audit holding one topic."""
        monitor = built_monitor(token=None)
        feed_durability(monitor, NOW)
        transport = httpx.ASGITransport(app=monitor.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            response = await client.get("/topics")
        assert response.status_code == 200
        body = response.json()
        assert body["refresh_interval"] == 60.0
        (topic,) = body["topics"]
        assert topic["topic"] == TOPIC
        assert topic["settings"]["replication_factor"] == 2
        assert topic["producers"] == [{"producer": "p-1", "acks": "1", "idempotence": False}]
        assert [f["name"] for f in topic["findings"]] == [
            "rf_below_3",
            "min_isr_1",
            "under_replicated",
            "producer_acks_not_all",
            "producer_not_idempotent",
        ]

    async def test_topics_needs_the_token_when_one_is_set(self) -> None:
        monitor = built_monitor(token="0123456789abcdef-token")
        transport = httpx.ASGITransport(app=monitor.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            assert (await client.get("/topics")).status_code == 401
            headers = {"Authorization": "Bearer 0123456789abcdef-token"}
            assert (await client.get("/topics", headers=headers)).status_code == 200


class TestRefreshSetting:
    def test_default_is_60_seconds(self) -> None:
        config = load_config({"topic": ["t"], "bootstrap_servers": "k:9092"}, {})
        assert config.durability.refresh == 60.0
        assert config.durability.is_enabled

    def test_zero_turns_the_audit_off(self) -> None:
        """No audit: neither /topics nor the metric exists."""
        config = load_config(
            {"topic": ["t"], "bootstrap_servers": "k:9092"}, {"GAPWATCH_DURABILITY_REFRESH": "0"}
        )
        assert not config.durability.is_enabled
        registry = CollectorRegistry()
        monitor = RunningMonitor(config, registry=registry, instance_id="i")
        assert monitor.durability is None
        assert "/topics" not in monitor.app.openapi()["paths"]
        assert "gapwatch_durability" not in generate_latest(registry).decode()

    @pytest.mark.parametrize("value", ["0.5", "-1", "86401"])
    def test_out_of_range_is_refused_naming_the_key(self, value: str) -> None:
        with pytest.raises(ConfigError, match="durability_refresh"):
            load_config(
                {"topic": ["t"], "bootstrap_servers": "k:9092", "durability_refresh": value}, {}
            )
