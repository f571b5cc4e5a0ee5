"""gapwatch's metric families as plain data, and the per-partition tracker metrics.

The monitor and the verifier export the same tracker counters under the same names
(``docs/metrics.md``; the verifier adds a ``group`` label), so the table of those names
lives here, beside the plain families both collectors build: a family is data
(:class:`ScalarFamily`, :class:`HistogramFamily`) that the monitor's lean renderer
(:mod:`gapwatch.monitor.metrics.exposition`) writes as text and :func:`to_metric` turns
into a prometheus-client object for any registry.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

ScalarKind = Literal["counter", "gauge"]
LabelValues = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ScalarFamily:
    """A counter or gauge family: one value per label-value tuple, as two columns.

    ``name`` is the family name without ``_total``; the renderer adds it to counters.
    ``label_values[i]`` are the labels of ``values[i]``. Columns, not pairs: a monitor
    reads thousands of series per scrape, and building a pair for each cost more than
    reading the value.
    """

    name: str
    kind: ScalarKind
    help: str
    label_names: tuple[str, ...]
    label_values: Sequence[LabelValues]
    values: Sequence[float]

    @classmethod
    def from_samples(
        cls,
        name: str,
        kind: ScalarKind,
        help_text: str,
        label_names: tuple[str, ...],
        samples: Sequence[tuple[LabelValues, float]],
    ) -> ScalarFamily:
        """A family from (label values, value) pairs."""
        return cls(
            name, kind, help_text, label_names, [p[0] for p in samples], [p[1] for p in samples]
        )

    @property
    def samples(self) -> Iterator[tuple[LabelValues, float]]:
        """(label values, value) pairs."""
        return zip(self.label_values, self.values, strict=True)


@dataclass(frozen=True, slots=True)
class HistogramFamily:
    """A histogram family: per label-value tuple, cumulative buckets (``+Inf`` last) and sum."""

    name: str
    help: str
    label_names: tuple[str, ...]
    samples: Sequence[tuple[LabelValues, Sequence[tuple[str, float]], float]]


Family = ScalarFamily | HistogramFamily


# (metric name without _total, help, counter attribute). The tracker keeps these counters.
PARTITION_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("gapwatch_records", "Stamped records read.", "records"),
    ("gapwatch_missing_records", "Records confirmed lost.", "missing"),
    ("gapwatch_gaps", "Gaps confirmed (runs of lost records).", "gaps_confirmed"),
    (
        "gapwatch_duplicate_records",
        "Records read again for an already-seen sequence.",
        "duplicates",
    ),
    ("gapwatch_late_records", "Records that arrived out of order and filled an open gap.", "late"),
    ("gapwatch_recovered_records", "Records of a confirmed gap that arrived later.", "recovered"),
    (
        "gapwatch_truncated_records",
        "Already-read records removed by a log truncation.",
        "truncated",
    ),
    (
        "gapwatch_truncated_unaccounted_records",
        "Truncated offsets older than the tracker's ring (sequences unknown).",
        "truncated_unaccounted",
    ),
    ("gapwatch_unstamped_records", "Records without gapwatch headers.", "unstamped"),
    ("gapwatch_malformed_records", "Records with damaged gapwatch headers.", "malformed"),
    ("gapwatch_sequence_resets", "Producers that restarted an epoch at sequence 0.", "resets"),
    ("gapwatch_zombie_records", "Records of an epoch older than the producer's newest.", "zombies"),
    (
        "gapwatch_unknown_fate_records",
        "Unacknowledged records of a closed producer that never arrived.",
        "unknown_fate",
    ),
    ("gapwatch_evicted_streams", "Streams forgotten (idle or over the cap).", "evictions"),
    (
        "gapwatch_unknown_gaps",
        "Gaps open when retention deleted unread offsets, neither healed nor called lost.",
        "gaps_unknown",
    ),
    (
        "gapwatch_truncations_beyond_ring",
        "Log divergences reaching the truncation ring's oldest record (depth unknown).",
        "truncations_beyond_ring",
    ),
)
PARTITION_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("gapwatch_open_gaps", "Gaps open now (records missing, may still arrive).", "open_gaps"),
    ("gapwatch_streams", "Producer streams (producer, epoch) tracked now.", "streams"),
)


def to_metric(family: Family) -> Metric:
    """``family`` as a prometheus-client metric family (the reference rendering)."""
    if isinstance(family, HistogramFamily):
        histogram = HistogramMetricFamily(family.name, family.help, labels=family.label_names)
        for values, buckets, total in family.samples:
            histogram.add_metric(list(values), list(buckets), total)
        return histogram
    kind = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
    metric = kind(family.name, family.help, labels=family.label_names)
    for values, value in family.samples:
        metric.add_metric(list(values), value)
    return metric
