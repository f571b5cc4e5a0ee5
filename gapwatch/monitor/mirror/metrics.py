"""``gapwatch_mirror_*`` metrics, read at scrape time from the :class:`MirrorTable`.

Per mirrored partition (or per topic with ``metrics_granularity: topic``: counters and
lag records summed, lag seconds the largest), each with the ``source_cluster`` label:

* ``gapwatch_mirror_missing_records_total{origin}``: records of confirmed gaps, by where
  they were lost (``mirror``, ``source``, ``unknown``);
* ``gapwatch_mirror_duplicate_records_total{made_by}``: duplicates read on the target, by
  who made them (``mirror``, ``source``, ``unknown``);
* ``gapwatch_mirror_lag_records`` and ``gapwatch_mirror_lag_seconds``
  (:mod:`gapwatch.monitor.mirror.lag`);

and per source cluster: ``gapwatch_mirror_source_up``, the lookups
(``gapwatch_mirror_lookups_total{outcome}``, ``gapwatch_mirror_lookups_pending``) and
``gapwatch_mirror_lag_errors_total``. docs/metrics.md documents every one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from gapwatch.gaps.metrics import LabelValues, ScalarFamily, to_metric
from gapwatch.gaps.origins import OriginBook
from gapwatch.monitor.mirror.table import DUPLICATE_MAKERS, MISSING_ORIGINS, MirrorRow, MirrorTable

_MISSING_HELP = "Records of confirmed gaps on a mirrored topic, by where they were lost."
_DUPLICATES_HELP = "Duplicate records read on a mirrored topic, by who made them."
_LAG_RECORDS_HELP = "Source records newer than the newest record on the mirrored partition."
_LAG_SECONDS_HELP = "How long the oldest source record not yet mirrored has waited."


class MirrorCollector(Collector):
    """The mirror families, per partition or summed per topic."""

    def __init__(
        self,
        table: MirrorTable,
        *,
        book: OriginBook,
        owned: Callable[[], Iterable[tuple[str, int]]],
        per_topic: bool,
    ) -> None:
        self._table = table
        self._book = book
        # Every owned mirrored partition gets its counters at 0 before its first loss:
        # increase() does not see the first value of a series born non-zero.
        self._owned = owned
        self._per_topic = per_topic

    def describe(self) -> Iterable[Metric]:
        """Nothing: the registry must not call collect() at registration time."""
        return ()

    def collect(self) -> Iterator[Metric]:
        """Every mirror family."""
        for family in self.read():
            yield to_metric(family)

    def read(self) -> list[ScalarFamily]:
        """The families as plain data."""
        for topic, partition in list(self._owned()):
            mirrored = self._book.mirrored(topic)
            if mirrored is not None:
                self._table.row(topic, partition, mirrored.source_cluster)
        rows = list(self._table.rows.items())
        base = (
            ("topic", "source_cluster")
            if self._per_topic
            else ("topic", "partition", "source_cluster")
        )
        missing: dict[LabelValues, float] = defaultdict(float)
        duplicates: dict[LabelValues, float] = defaultdict(float)
        lag_records: dict[LabelValues, float] = {}
        lag_seconds: dict[LabelValues, float] = {}
        for (topic, partition, cluster), row in rows:
            labels = (topic, cluster) if self._per_topic else (topic, str(partition), cluster)
            for origin in MISSING_ORIGINS:
                missing[(*labels, origin)] += row.missing[origin]
            for maker in DUPLICATE_MAKERS:
                duplicates[(*labels, maker)] += row.duplicates[maker]
            _add_lag(lag_records, lag_seconds, labels, row)
        # Likewise the lookup counters of every configured source, before its first lookup.
        for cluster in list(self._table.source_up):
            self._table.stats(cluster)
        lookups = list(self._table.lookups.items())
        return [
            ScalarFamily.from_samples(
                "gapwatch_mirror_missing_records",
                "counter",
                _MISSING_HELP,
                (*base, "origin"),
                list(missing.items()),
            ),
            ScalarFamily.from_samples(
                "gapwatch_mirror_duplicate_records",
                "counter",
                _DUPLICATES_HELP,
                (*base, "made_by"),
                list(duplicates.items()),
            ),
            ScalarFamily.from_samples(
                "gapwatch_mirror_lag_records",
                "gauge",
                _LAG_RECORDS_HELP,
                base,
                list(lag_records.items()),
            ),
            ScalarFamily.from_samples(
                "gapwatch_mirror_lag_seconds",
                "gauge",
                _LAG_SECONDS_HELP,
                base,
                list(lag_seconds.items()),
            ),
            ScalarFamily.from_samples(
                "gapwatch_mirror_lookups",
                "counter",
                "Source lookups by outcome: decided, failed (after every retry), retried "
                "(one per retry), dropped (queue full).",
                ("source_cluster", "outcome"),
                [
                    ((cluster, outcome), getattr(stats, outcome))
                    for cluster, stats in lookups
                    for outcome in ("decided", "failed", "retried", "dropped")
                ],
            ),
            ScalarFamily.from_samples(
                "gapwatch_mirror_source_up",
                "gauge",
                "1 once the monitor's readers of the source cluster are connected, else 0.",
                ("source_cluster",),
                [((cluster,), up) for cluster, up in list(self._table.source_up.items())],
            ),
            ScalarFamily.from_samples(
                "gapwatch_mirror_lag_errors",
                "counter",
                "Lag readings of a mirrored partition that failed (the last value stays).",
                ("source_cluster",),
                [
                    ((cluster,), self._table.lag_errors.get(cluster, 0))
                    for cluster in list(self._table.source_up)
                ],
            ),
            ScalarFamily.from_samples(
                "gapwatch_mirror_lookups_pending",
                "gauge",
                "Source lookups queued, not started yet.",
                (),
                [((), self._table.pending)],
            ),
        ]


def _add_lag(
    records: dict[LabelValues, float],
    seconds: dict[LabelValues, float],
    labels: LabelValues,
    row: MirrorRow,
) -> None:
    if row.lag_records is None or row.lag_seconds is None:
        return
    records[labels] = records.get(labels, 0) + row.lag_records
    seconds[labels] = max(seconds.get(labels, 0.0), row.lag_seconds)
