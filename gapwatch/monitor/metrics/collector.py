"""Prometheus metrics of the monitor, computed at scrape time from the trackers' counters.

:class:`MonitorCollector` is a custom collector: the record path only bumps the trackers'
plain int counters; each scrape walks the owned partitions once and reads every value
into plain families. So there is no labelled-child lookup per record, and every
(topic, partition) series exists (at 0) from the moment the partition is assigned, which
``increase()`` needs to see the first loss. ``/metrics`` renders those families with
:mod:`gapwatch.monitor.metrics.exposition` (its :class:`MetricsPage`); registered in
a prometheus-client registry, the collector yields the same families as ``*MetricFamily``
objects. Every metric is documented in ``docs/metrics.md``; names are a public contract.
"""

from __future__ import annotations

import operator
import platform
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from gapwatch.gaps.metrics import (
    PARTITION_COUNTERS,
    PARTITION_GAUGES,
    Family,
    HistogramFamily,
    ScalarFamily,
    to_metric,
)
from gapwatch.monitor.health import MonitorHealth
from gapwatch.monitor.metrics.topics import TopicSums, TopicTotals
from gapwatch.monitor.state.partitions import OwnedPartitions, PartitionState
from gapwatch.version import __version__

LABELS = ("topic", "partition")
TOPIC_LABELS = ("topic",)

_SKIPPED_HELP = "Offsets deleted by retention before the monitor read them (not loss)."
_LEADER_CHANGES_HELP = "Partition leader changes seen (each one is checked for a log truncation)."
_LAG_HELP = "High watermark minus the monitor's read position."
_LAST_RECORD_HELP = "Timestamp of the newest record read (seconds since the epoch)."

_TRACKER_ATTRIBUTES = tuple(attribute for _, _, attribute in PARTITION_COUNTERS + PARTITION_GAUGES)
_TRACKER_VALUES = operator.attrgetter(*_TRACKER_ATTRIBUTES)


class MonitorCollector(Collector):
    """Every gapwatch metric, read from ``partitions`` and ``health`` on each scrape.

    :meth:`read` is the one place values are taken, as plain families
    (:mod:`gapwatch.monitor.metrics.exposition`); ``/metrics`` renders those with the lean renderer,
    and :meth:`collect` turns the same families into prometheus-client objects, so
    ``generate_latest(registry)`` (an embedding application's own endpoint, the tests)
    shows exactly the same series.
    """

    def __init__(
        self,
        partitions: OwnedPartitions,
        health: MonitorHealth,
        *,
        is_up: Callable[[], bool] = lambda: False,
        is_ready: Callable[[], bool] = lambda: False,
        topic_totals: TopicTotals | None = None,
        fetch_session_resets: Callable[[], int] = lambda: 0,
    ) -> None:
        self._partitions = partitions
        # Asked at every scrape: fetch sessions started over (kafka.fetch_sessions).
        self._fetch_session_resets = fetch_session_resets
        # Given: metrics granularity "topic", every per-partition family summed per topic
        # (its restore callback must be wired to the rebalance handler). None: per partition.
        self._topic_totals = topic_totals
        self._health = health
        # Asked at every scrape: whether the consumer loop fetches (gapwatch_up) and
        # whether /readyz would say ready (gapwatch_ready, which GapwatchNotReady alerts on).
        self._is_up = is_up
        self._is_ready = is_ready

    def describe(self) -> Iterable[Metric]:
        """Nothing: the registry must not call collect() at registration time."""
        return ()

    def collect(self) -> Iterator[Metric]:
        """All metric families as prometheus-client objects (none while rendered separately)."""
        if _RENDERED_SEPARATELY.get() is self:
            return
        for family in self.read():
            yield to_metric(family)

    def read(self) -> list[Family]:
        """All metric families, computed from the current counters.

        Cheap enough to run on the event loop (a tuple per series): call it there, where
        no record is processed meanwhile, and render the result wherever.
        """
        states = list(self._partitions)
        if self._topic_totals is None:
            families = self._per_partition(states)
        else:
            families = self._per_topic(self._topic_totals.read(states))
        families.append(
            ScalarFamily.from_samples(
                "gapwatch_partitions_assigned",
                "gauge",
                "Partitions this instance owns.",
                (),
                [((), len(states))],
            )
        )
        families.extend(self._latency())
        families.extend(self._process())
        return families

    def _per_partition(self, states: list[PartitionState]) -> list[Family]:
        labels = [s.labels for s in states]
        # One C-level call per partition for every tracker value, then one column per
        # metric: a scrape of hundreds of partitions reads in a fraction of a millisecond.
        columns = list(zip(*(_TRACKER_VALUES(s.tracker.counters) for s in states), strict=True))
        if not columns:
            columns = [()] * len(_TRACKER_ATTRIBUTES)
        column = dict(zip(_TRACKER_ATTRIBUTES, columns, strict=True))
        families: list[Family] = [
            ScalarFamily(name, "counter", help_text, LABELS, labels, column[attribute])
            for name, help_text, attribute in PARTITION_COUNTERS
        ]
        families.append(
            ScalarFamily(
                "gapwatch_skipped_records",
                "counter",
                _SKIPPED_HELP,
                LABELS,
                labels,
                [s.skipped for s in states],
            )
        )
        families.append(
            ScalarFamily(
                "gapwatch_leader_changes",
                "counter",
                _LEADER_CHANGES_HELP,
                LABELS,
                labels,
                [s.leader_changes for s in states],
            )
        )
        families.extend(
            ScalarFamily(name, "gauge", help_text, LABELS, labels, column[attribute])
            for name, help_text, attribute in PARTITION_GAUGES
        )
        families.append(
            ScalarFamily(
                "gapwatch_consumer_lag_records",
                "gauge",
                _LAG_HELP,
                LABELS,
                labels,
                [s.lag or 0 for s in states],
            )
        )
        families.append(
            ScalarFamily.from_samples(
                "gapwatch_partition_last_record_timestamp_seconds",
                "gauge",
                _LAST_RECORD_HELP,
                LABELS,
                [(s.labels, s.last_record_ts) for s in states if s.last_record_ts is not None],
            )
        )
        return families

    def _per_topic(self, sums: list[TopicSums]) -> list[Family]:
        """The per-partition families with one series per topic (``docs/metrics.md``)."""
        labels = [(s.topic,) for s in sums]
        columns = list(zip(*(s.counters for s in sums), strict=True))
        if not columns:
            columns = [()] * (len(PARTITION_COUNTERS) + 2)
        families: list[Family] = [
            ScalarFamily(name, "counter", help_text, TOPIC_LABELS, labels, column)
            for (name, help_text, _), column in zip(
                PARTITION_COUNTERS, columns[: len(PARTITION_COUNTERS)], strict=True
            )
        ]
        skipped, leader_changes = columns[-2], columns[-1]
        families.append(
            ScalarFamily(
                "gapwatch_skipped_records", "counter", _SKIPPED_HELP, TOPIC_LABELS, labels, skipped
            )
        )
        families.append(
            ScalarFamily(
                "gapwatch_leader_changes",
                "counter",
                _LEADER_CHANGES_HELP,
                TOPIC_LABELS,
                labels,
                leader_changes,
            )
        )
        # Gauges describe now: only topics with partitions owned now have them.
        owned = [s for s in sums if s.owned]
        owned_labels = [(s.topic,) for s in owned]
        gauges = {"open_gaps": [s.open_gaps for s in owned], "streams": [s.streams for s in owned]}
        families.extend(
            ScalarFamily(name, "gauge", help_text, TOPIC_LABELS, owned_labels, gauges[attribute])
            for name, help_text, attribute in PARTITION_GAUGES
        )
        families.append(
            ScalarFamily(
                "gapwatch_consumer_lag_records",
                "gauge",
                _LAG_HELP,
                TOPIC_LABELS,
                owned_labels,
                [s.lag for s in owned],
            )
        )
        families.append(
            ScalarFamily.from_samples(
                "gapwatch_partition_last_record_timestamp_seconds",
                "gauge",
                _LAST_RECORD_HELP,
                TOPIC_LABELS,
                [((s.topic,), s.last_record_ts) for s in sums if s.last_record_ts is not None],
            )
        )
        return families

    def _latency(self) -> list[Family]:
        latencies = self._partitions.latency_by_topic()
        return [
            HistogramFamily(
                "gapwatch_end_to_end_latency_seconds",
                "Monitor read time minus record timestamp (see docs/metrics.md on clock skew).",
                ("topic",),
                [((topic,), latency.cumulative(), latency.total) for topic, latency in latencies],
            ),
            ScalarFamily.from_samples(
                "gapwatch_clock_skewed_records",
                "counter",
                "Records whose timestamp was ahead of the monitor's clock (latency counted as 0).",
                ("topic",),
                [((topic,), latency.clock_skewed) for topic, latency in latencies],
            ),
        ]

    def _process(self) -> list[Family]:
        health = self._health
        families: list[Family] = [
            ScalarFamily.from_samples(
                "gapwatch_up",
                "gauge",
                "1 while the consumer loop is running and fetching, else 0.",
                (),
                [((), 1 if self._is_up() else 0)],
            ),
            ScalarFamily.from_samples(
                "gapwatch_ready",
                "gauge",
                "1 once the assigned partitions are restored (as /readyz), else 0.",
                (),
                [((), 1 if self._is_ready() else 0)],
            ),
            ScalarFamily.from_samples(
                "gapwatch_build_info",
                "gauge",
                "Always 1; labels say what runs.",
                ("version", "python"),
                [((__version__, platform.python_version()), 1)],
            ),
        ]
        for name, help_text, value in (
            ("gapwatch_checkpoints", "Checkpoints written.", health.checkpoints),
            (
                "gapwatch_checkpoint_failures",
                "Checkpoint writes that failed (offsets not committed).",
                health.checkpoint_failures,
            ),
            ("gapwatch_commit_failures", "Offset commits that failed.", health.commit_failures),
            (
                "gapwatch_checkpoints_too_large",
                "Checkpoints not written because they exceed the size limit (not committed).",
                health.checkpoints_too_large,
            ),
            (
                "gapwatch_checkpoint_restore_failures",
                "Checkpoints that could not be restored (partition started fresh from them).",
                health.checkpoint_restore_failures,
            ),
            ("gapwatch_producer_reports_read", "Producer reports applied.", health.reports_read),
            (
                "gapwatch_producer_reports_malformed",
                "Producer report records that could not be decoded.",
                health.reports_malformed,
            ),
            (
                "gapwatch_fetch_session_resets",
                "Fetch sessions started over after a failed fetch or a lost session.",
                self._fetch_session_resets(),
            ),
        ):
            families.append(
                ScalarFamily.from_samples(name, "counter", help_text, (), [((), value)])
            )
        families.append(
            ScalarFamily.from_samples(
                "gapwatch_event_subscriber_failures",
                "counter",
                "Exceptions raised by an event subscriber (gap store, sinks).",
                ("subscriber",),
                [((name,), count) for name, count in tuple(health.subscriber_failures.items())],
            )
        )
        return families


# The collector whose families the caller renders itself in this context (the /metrics
# handler renders gapwatch's families with the lean renderer, then the rest of the registry
# with generate_latest); its collect() yields nothing there so nothing is rendered twice.
# A ContextVar, not a flag on the collector: another thread's generate_latest(registry)
# at the same moment must still see everything.
_RENDERED_SEPARATELY: ContextVar[MonitorCollector | None] = ContextVar(
    "gapwatch_rendered_separately", default=None
)


@contextmanager
def rendered_separately(collector: MonitorCollector) -> Iterator[None]:
    """Within this block (this context only), ``collector.collect()`` yields nothing."""
    token = _RENDERED_SEPARATELY.set(collector)
    try:
        yield
    finally:
        _RENDERED_SEPARATELY.reset(token)
