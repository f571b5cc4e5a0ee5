"""Prometheus metrics of the sinks and the gap log, read from their counters at scrape time.

A custom collector registered in the monitor's registry (``/metrics`` renders the rest of
the registry besides the monitor's own families), so nothing is looked up or incremented
through prometheus-client on the event path. Every configured sink's series exist from
start at 0, so ``increase()`` and ``rate()`` in the shipped rules see the first failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gapwatch.alerting.delivery import SinkStats
from gapwatch.alerting.eventhub import EventHub
from gapwatch.alerting.fleet import FleetStore
from gapwatch.alerting.gaplog import GapLogPublisher, GapLogReader


class AlertingCollector(Collector):
    """``gapwatch_alert_*{sink}``, ``gapwatch_gap_log_*``, fleet and ``/events`` figures."""

    def __init__(
        self,
        *,
        sinks: Callable[[], Sequence[SinkStats]],
        publisher: GapLogPublisher,
        reader: GapLogReader,
        fleet: FleetStore,
        hub: EventHub,
        firing_alerts: Callable[[], int] | None = None,
    ) -> None:
        self._sinks = sinks
        self._publisher = publisher
        self._reader = reader
        self._fleet = fleet
        self._hub = hub
        self._firing_alerts = firing_alerts

    def describe(self) -> Iterable[Metric]:
        """Nothing: the registry must not call collect() at registration time."""
        return ()

    def collect(self) -> Iterator[Metric]:
        """One family per figure; called by every scrape."""
        sinks = list(self._sinks())
        per_sink = (
            (
                "gapwatch_alert_deliveries",
                "successful deliveries (HTTP 2xx) per sink",
                "deliveries",
            ),
            (
                "gapwatch_alert_failures",
                "failed delivery attempts per sink (each retry)",
                "failures",
            ),
            ("gapwatch_alert_dropped", "alerts or events a sink gave up on", "dropped"),
        )
        for name, help_text, attribute in per_sink:
            family = CounterMetricFamily(name, help_text, labels=["sink"])
            for stats in sinks:
                family.add_metric([stats.name], getattr(stats, attribute))
            yield family
        queued = GaugeMetricFamily(
            "gapwatch_alert_queue",
            "events waiting (webhook) or alerts firing (alertmanager)",
            labels=["sink"],
        )
        for stats in sinks:
            queued.add_metric([stats.name], stats.queued)
        yield queued
        if self._firing_alerts is not None:
            yield GaugeMetricFamily(
                "gapwatch_alerts_firing",
                "alerts this instance keeps firing in Alertmanager",
                value=self._firing_alerts(),
            )
        p = self._publisher
        yield CounterMetricFamily(
            "gapwatch_gap_log_published", "gap changes written to the gap log", value=p.published
        )
        yield CounterMetricFamily(
            "gapwatch_gap_log_failures",
            "gap log write rounds that failed (retried)",
            value=p.failures,
        )
        yield CounterMetricFamily(
            "gapwatch_gap_log_dropped",
            "gap changes dropped because the queue was full",
            value=p.dropped,
        )
        yield GaugeMetricFamily(
            "gapwatch_gap_log_pending", "gap changes not yet acknowledged", value=p.pending
        )
        yield CounterMetricFamily(
            "gapwatch_gap_log_read", "gap log records read (all groups)", value=self._reader.read
        )
        yield CounterMetricFamily(
            "gapwatch_gap_log_malformed",
            "gap log records that could not be decoded",
            value=self._reader.malformed,
        )
        yield GaugeMetricFamily(
            "gapwatch_fleet_gaps", "gaps in the fleet view", value=len(self._fleet)
        )
        yield GaugeMetricFamily(
            "gapwatch_event_clients", "connected /events clients", value=self._hub.clients
        )
