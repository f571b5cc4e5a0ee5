"""Prometheus metrics of stamping producers, read from their bookkeeping at scrape time.

Counting already happens in :class:`~gapwatch.producer.bookkeeping.DeliveryBook` and
:class:`~gapwatch.producer.reports.ReportStats`, so nothing is mirrored into labelled
metric children on the send path; a custom collector sums them by topic when Prometheus
scrapes. Several producers in one process (the load generator runs many) share one
collector per registry, and a stopped producer's totals are folded into the collector so
counters never go down.

Series (all counters, label ``topic``; ``error`` is the exception class name)::

    gapwatch_producer_records_stamped_total
    gapwatch_producer_records_acknowledged_total
    gapwatch_producer_records_sent_unacknowledged_total   (acks=0: sent, never acknowledged)
    gapwatch_producer_records_failed_total{error}
    gapwatch_producer_records_unobserved_total            (delivery future cancelled by the app)
    gapwatch_producer_reports_published_total
    gapwatch_producer_reports_failed_total
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from gapwatch.producer.bookkeeping import DeliveryBook
from gapwatch.producer.reports import ReportStats


class _Totals:
    __slots__ = ("acked", "failed", "published", "report_failed", "stamped", "unack", "unobs")

    def __init__(self) -> None:
        self.stamped: Counter[str] = Counter()
        self.acked: Counter[str] = Counter()
        self.unack: Counter[str] = Counter()
        self.unobs: Counter[str] = Counter()
        self.failed: Counter[tuple[str, str]] = Counter()
        self.published: Counter[str] = Counter()
        self.report_failed: Counter[str] = Counter()

    def add_book(self, book: DeliveryBook) -> None:
        for stream in book.streams():
            topic = stream.topic
            self.stamped[topic] += stream.next_seq
            self.acked[topic] += stream.acked
            self.unack[topic] += stream.unconfirmed
            self.unobs[topic] += stream.unobserved
            for error, count in stream.failed_by_error.items():
                self.failed[(topic, error)] += count

    def add_stats(self, stats: ReportStats) -> None:
        self.published.update(stats.published)
        self.report_failed.update(stats.failed)


class ProducerCollector(Collector):
    """Sums the counts of every attached producer; one instance per registry."""

    def __init__(self) -> None:
        # A Stamper may be fed from a client's own thread (kafka-python callbacks).
        self._lock = threading.Lock()
        self._live: list[tuple[DeliveryBook, ReportStats | None]] = []
        self._retired = _Totals()

    def attach(self, book: DeliveryBook, stats: ReportStats | None = None) -> None:
        """Start exposing ``book`` (and ``stats``)."""
        with self._lock:
            self._live.append((book, stats))

    def detach(self, book: DeliveryBook) -> None:
        """Stop following ``book`` but keep its counts, so counters never decrease."""
        with self._lock:
            for i, (live_book, stats) in enumerate(self._live):
                if live_book is book:
                    del self._live[i]
                    self._retired.add_book(book)
                    if stats is not None:
                        self._retired.add_stats(stats)
                    return

    def _totals(self) -> _Totals:
        totals = _Totals()
        with self._lock:
            for counter, retired in (
                (totals.stamped, self._retired.stamped),
                (totals.acked, self._retired.acked),
                (totals.unack, self._retired.unack),
                (totals.unobs, self._retired.unobs),
                (totals.published, self._retired.published),
                (totals.report_failed, self._retired.report_failed),
            ):
                counter.update(retired)
            totals.failed.update(self._retired.failed)
            live = list(self._live)
        for book, stats in live:
            totals.add_book(book)
            if stats is not None:
                totals.add_stats(stats)
        return totals

    def collect(self) -> Iterable[Metric]:
        totals = self._totals()
        yield _family(
            "gapwatch_producer_records_stamped",
            "Records stamped with a gapwatch sequence.",
            dict(totals.stamped),
        )
        yield _family(
            "gapwatch_producer_records_acknowledged",
            "Stamped records the broker acknowledged.",
            dict(totals.acked),
        )
        yield _family(
            "gapwatch_producer_records_sent_unacknowledged",
            "Stamped records sent with acks=0: written out, never acknowledged.",
            dict(totals.unack),
        )
        yield _family(
            "gapwatch_producer_records_unobserved",
            "Stamped records whose outcome was not seen (delivery future cancelled).",
            dict(totals.unobs),
        )
        failed = CounterMetricFamily(
            "gapwatch_producer_records_failed",
            "Stamped records whose send failed with an error the application received.",
            labels=["topic", "error"],
        )
        # Every topic gets an error="" series at 0 so increase() sees the first failure.
        for topic in totals.stamped:
            failed.add_metric([topic, ""], 0)
        for (topic, error), count in sorted(totals.failed.items()):
            failed.add_metric([topic, error], count)
        yield failed
        reported = set(totals.stamped) | set(totals.published) | set(totals.report_failed)
        yield _family(
            "gapwatch_producer_reports_published",
            "Producer reports published to the control topic, by the topic they describe.",
            {topic: totals.published[topic] for topic in reported},
        )
        yield _family(
            "gapwatch_producer_reports_failed",
            "Producer reports that could not be published, by the topic they describe.",
            {topic: totals.report_failed[topic] for topic in reported},
        )


def _family(name: str, documentation: str, values: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=["topic"])
    for topic in sorted(values):
        family.add_metric([topic], values[topic])
    return family


_collectors: weakref.WeakKeyDictionary[CollectorRegistry, ProducerCollector] = (
    weakref.WeakKeyDictionary()
)
_collectors_lock = threading.Lock()


def collector_for(registry: CollectorRegistry | None = REGISTRY) -> ProducerCollector:
    """The producer collector registered in ``registry``, registering it on first use.

    ``registry=None`` gives a collector that is registered nowhere (metrics disabled).
    """
    if registry is None:
        return ProducerCollector()
    with _collectors_lock:
        collector = _collectors.get(registry)
        if collector is None:
            collector = _collectors[registry] = ProducerCollector()
            registry.register(collector)
        return collector
