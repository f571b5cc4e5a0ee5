"""Prometheus metrics of the durability audit, computed at scrape time.

``gapwatch_durability_finding{topic,finding}`` is 1 while a finding holds and 0 otherwise,
for every finding of the table (:data:`gapwatch.core.durability.FINDING_NAMES`) on every
audited topic: the ``finding`` label takes only those values, so the series count is
topics x findings, and every series exists at 0 before its finding first holds. The metric
is per topic at either metrics granularity. Plus the audit's own health: refreshes, failed
refreshes and the time of the last successful one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gapwatch.core.durability import FINDING_NAMES
from gapwatch.monitor.durability import DurabilityAudit


class DurabilityCollector(Collector):
    """``gapwatch_durability_*``, read from a :class:`DurabilityAudit` on each scrape."""

    def __init__(self, audit: DurabilityAudit) -> None:
        self._audit = audit

    def describe(self) -> Iterable[Metric]:
        """Nothing: the registry must not call collect() at registration time."""
        return ()

    def collect(self) -> Iterator[Metric]:
        """The findings of every audited topic and the audit's counters."""
        audit = self._audit
        findings = GaugeMetricFamily(
            "gapwatch_durability_finding",
            "1 while a durability finding holds for a topic, else 0 (docs/operations.md)",
            labels=["topic", "finding"],
        )
        for topic_audit in audit.audits():
            holding = topic_audit.finding_names
            for name in FINDING_NAMES:
                findings.add_metric([topic_audit.settings.topic, name], float(name in holding))
        yield findings
        yield CounterMetricFamily(
            "gapwatch_durability_refreshes",
            "successful reads of the watched topics' settings and placement",
            value=audit.refreshes,
        )
        yield CounterMetricFamily(
            "gapwatch_durability_refresh_failures",
            "failed reads of the watched topics' settings (findings kept from the last one)",
            value=audit.failures,
        )
        if audit.audited_at is not None:
            yield GaugeMetricFamily(
                "gapwatch_durability_audited_timestamp_seconds",
                "when the watched topics' settings were last read",
                value=audit.audited_at,
            )
