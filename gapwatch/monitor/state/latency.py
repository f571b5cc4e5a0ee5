"""End-to-end latency per topic: a bucket array filled on the record path, read at scrape.

Latency is the monitor's clock at read time minus the record's timestamp: producer's clock
for ``CreateTime`` topics (the default), the leader broker's for ``LogAppendTime``. It
therefore includes produce, replication, the monitor's fetch and any consumer lag, and is
biased by the clock offset between that host and the monitor. A record stamped in the
future (producer clock ahead) would give a negative latency: it is counted in
``clock_skewed`` and observed as 0 rather than dropped, so the histogram's count still
equals the records read. ``observe`` is a bisect and three additions: no prometheus_client
call, no label lookup per record; the record path uses ``observe_batch``, which sorts a
batch's timestamps once and counts each bucket with one bisect (per record that is a list
store and a nearly-sorted sort step, in C).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Final

# Seconds; from "healthy cluster" (ms) to "consumer hours behind".
LATENCY_BUCKETS: Final[tuple[float, ...]] = (
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
    30.0,
    60.0,
    300.0,
    1800.0,
)


class LatencyHistogram:
    """Counts of latencies per bucket (upper bounds :data:`LATENCY_BUCKETS`, then +Inf)."""

    __slots__ = ("clock_skewed", "counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0
        self.clock_skewed = 0

    def observe(self, seconds: float) -> None:
        """Add one latency; negative values (clock skew) count as 0 and are tallied."""
        if seconds < 0.0:
            self.clock_skewed += 1
            seconds = 0.0
        # bisect_left: a value equal to a bound belongs to that bucket (le = "<=").
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds

    def observe_batch(self, timestamps_ms: list[int], now: float) -> None:
        """:meth:`observe` for records with these timestamps (ms), all read at ``now``."""
        if not timestamps_ms:
            return
        ordered = sorted(timestamps_ms)  # oldest first: latencies from largest to smallest
        n = len(ordered)
        now_ms = now * 1000.0
        # Latency <= bound  <=>  timestamp >= now_ms - bound * 1000. Records from the future
        # (clock skew) count as 0 s: in the first bucket, like observe().
        counts = self.counts
        below = 0  # records with latency <= the previous bound
        for k, bound in enumerate(LATENCY_BUCKETS):
            within = n - bisect_left(ordered, now_ms - bound * 1000.0)
            counts[k] += within - below
            below = within
        counts[-1] += n - below
        past = bisect_right(ordered, now_ms)  # timestamps not in the future
        self.clock_skewed += n - past
        self.total += (past * now_ms - sum(ordered[:past])) * 0.001

    def add(self, other: LatencyHistogram) -> None:
        """Add every count of ``other`` to this one (a sum of histograms)."""
        for k, count in enumerate(tuple(other.counts)):
            self.counts[k] += count
        self.total += other.total
        self.clock_skewed += other.clock_skewed

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus-style cumulative buckets, ``+Inf`` last."""
        counts = tuple(self.counts)  # one atomic copy: a scrape may run in another thread
        running = 0
        buckets: list[tuple[str, float]] = []
        for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), counts, strict=True):
            running += count
            buckets.append((bound, float(running)))
        return buckets
