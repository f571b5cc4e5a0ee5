"""``gapwatch_canary_*``: the canary's figures per broker, read at scrape time.

A custom collector over the runner's state (:class:`~gapwatch.kafka.canary.runner.Canary`)
and, in the monitor, the end-to-end latency of the canary partitions as read by the
monitor's consumer. A broker keeps its series, at 0 while it is unavailable, until it has
been gone for the canary's ``departure`` time, so an alert on
``gapwatch_canary_broker_available == 0`` sees it go.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from gapwatch.kafka.canary.runner import Canary

# Partition -> (cumulative ``(le, count)`` buckets, sum of seconds).
PartitionLatencies = Mapping[int, tuple[Sequence[tuple[str, float]], float]]


class CanaryCollector(Collector):
    """The canary's series; ``end_to_end`` (the monitor's read latency per canary
    partition) is optional: the standalone ``gapwatch canary`` does not read."""

    def __init__(
        self, canary: Canary, *, end_to_end: Callable[[], PartitionLatencies] | None = None
    ) -> None:
        self._canary = canary
        self._end_to_end = end_to_end

    def describe(self) -> Iterable[Metric]:
        """Nothing: the registry must not call collect() at registration time."""
        return ()

    def collect(self) -> Iterator[Metric]:
        """One family per figure; called by every scrape."""
        canary = self._canary
        available = GaugeMetricFamily(
            "gapwatch_canary_broker_available",
            "1 while the broker leads its canary partition and a canary write through it "
            "was acknowledged within the availability window, else 0",
            labels=["broker"],
        )
        for broker, is_up in canary.availability().items():
            available.add_metric([str(broker)], 1.0 if is_up else 0.0)
        yield available
        by_broker = tuple(canary.stats.by_broker.items())
        writes = CounterMetricFamily(
            "gapwatch_canary_writes",
            "canary writes acknowledged, by the broker that led the partition",
            labels=["broker"],
        )
        failures = CounterMetricFamily(
            "gapwatch_canary_write_failures",
            "canary writes that failed or timed out (each is retried with the same stamp)",
            labels=["broker"],
        )
        latency = HistogramMetricFamily(
            "gapwatch_canary_write_latency_seconds",
            "time from a canary write to its acknowledgement (acks=all)",
            labels=["broker"],
        )
        for broker, counts in by_broker:
            writes.add_metric([str(broker)], counts.successes)
            failures.add_metric([str(broker)], counts.failures)
            latency.add_metric(
                [str(broker)], counts.latency.cumulative(), sum_value=counts.latency.total
            )
        yield writes
        yield failures
        yield latency
        if self._end_to_end is not None:
            owners = dict(canary.owners)
            e2e = HistogramMetricFamily(
                "gapwatch_canary_end_to_end_latency_seconds",
                "monitor read time minus canary record timestamp, per canary partition, "
                "labelled with the broker that partition belongs to",
                labels=["broker", "partition"],
            )
            for partition, (buckets, total) in sorted(self._end_to_end().items()):
                owner = owners.get(partition)
                e2e.add_metric(
                    ["" if owner is None else str(owner), str(partition)],
                    list(buckets),
                    sum_value=total,
                )
            yield e2e
        stats = canary.stats
        for name, text, value in (
            (
                "gapwatch_canary_leader_elections",
                "preferred-leader election requests",
                stats.elections,
            ),
            (
                "gapwatch_canary_placement_changes",
                "requests that added or moved partitions",
                stats.placement_changes,
            ),
            (
                "gapwatch_canary_check_failures",
                "metadata checks that failed or timed out",
                stats.check_failures,
            ),
        ):
            family = CounterMetricFamily(name, text)
            family.add_metric([], value)
            yield family
