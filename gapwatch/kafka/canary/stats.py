"""What the canary observed, per broker: writes acknowledged and failed, write latency.

Plain counters read at scrape time by :mod:`gapwatch.kafka.canary.metrics`; written only
by the runner, on its one event loop.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

# Seconds; from a healthy loopback write (ms) to the longest a write may take.
WRITE_LATENCY_BUCKETS: Final[tuple[float, ...]] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Buckets:
    """A histogram: counts per bucket (upper bounds ``bounds``, then +Inf) and the sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...] = WRITE_LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        """Add one value (negative values count as 0)."""
        seconds = max(0.0, seconds)
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, cumulative count)`` pairs as Prometheus histograms expose them."""
        result: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            result.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return result


class BrokerWrites:
    """Canary writes through one broker."""

    __slots__ = ("failures", "latency", "successes")

    def __init__(self) -> None:
        self.successes = 0
        self.failures = 0
        self.latency = Buckets()


class CanaryStats:
    """Per-broker write counts, and the runner's own work (elections, placement, checks)."""

    __slots__ = ("by_broker", "check_failures", "elections", "placement_changes")

    def __init__(self) -> None:
        self.by_broker: dict[int, BrokerWrites] = {}
        self.elections = 0
        self.placement_changes = 0
        self.check_failures = 0

    def broker(self, broker: int) -> BrokerWrites:
        """The counters of ``broker``, created on first use."""
        writes = self.by_broker.get(broker)
        if writes is None:
            writes = self.by_broker[broker] = BrokerWrites()
        return writes

    def succeeded(self, broker: int, seconds: float) -> None:
        """A write through ``broker`` was acknowledged after ``seconds``."""
        writes = self.broker(broker)
        writes.successes += 1
        writes.latency.observe(seconds)

    def failed(self, broker: int) -> None:
        """A write through ``broker`` failed or timed out."""
        self.broker(broker).failures += 1
