"""The scrape-time collector: series from assignment on, values from the trackers' counters."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from gapwatch.core.config import TrackerConfig
from gapwatch.core.wire import Stamp
from gapwatch.gaps.metrics import PARTITION_COUNTERS
from gapwatch.monitor.health import MonitorHealth
from gapwatch.monitor.metrics.collector import MonitorCollector
from gapwatch.monitor.state.latency import LatencyHistogram
from gapwatch.monitor.state.partitions import OwnedPartitions


def scrape(
    partitions: OwnedPartitions,
    health: MonitorHealth | None = None,
    *,
    is_up: Callable[[], bool] = lambda: False,
    is_ready: Callable[[], bool] = lambda: False,
) -> str:
    registry = CollectorRegistry()
    collector = MonitorCollector(
        partitions, health or MonitorHealth(), is_up=is_up, is_ready=is_ready
    )
    registry.register(collector)
    return generate_latest(registry).decode()


def sample(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {line_start!r} in:\n{text}")


class TestMonitorCollector:
    def test_every_series_exists_at_zero_from_assignment(self) -> None:
        """An assigned partition has every per-partition series before any record."""
        partitions = OwnedPartitions(TrackerConfig(grace_period=0))
        partitions.add("orders", 7)
        text = scrape(partitions)
        for name, _, _ in PARTITION_COUNTERS:
            assert sample(text, f'{name}_total{{partition="7",topic="orders"}}') == 0
        assert sample(text, 'gapwatch_skipped_records_total{partition="7",topic="orders"}') == 0
        assert sample(text, 'gapwatch_open_gaps{partition="7",topic="orders"}') == 0
        assert sample(text, "gapwatch_partitions_assigned ") == 1

    def test_counters_follow_the_tracker(self) -> None:
        """Records, the open gap and a duplicate show up in the next scrape."""
        partitions = OwnedPartitions(TrackerConfig(grace_period=100))
        state = partitions.add("t", 0)
        for offset, seq in enumerate([0, 1, 2, 5, 2]):
            state.tracker.observe(offset, 1000, Stamp("p", 1, seq), now=10.0)
        state.note_deleted_unread(4, resume_at=len([0, 1, 2, 5, 2]))
        text = scrape(partitions)
        assert sample(text, 'gapwatch_records_total{partition="0",topic="t"}') == 5
        assert sample(text, 'gapwatch_open_gaps{partition="0",topic="t"}') == 1
        assert sample(text, 'gapwatch_duplicate_records_total{partition="0",topic="t"}') == 1
        assert sample(text, 'gapwatch_skipped_records_total{partition="0",topic="t"}') == 4
        assert sample(text, 'gapwatch_streams{partition="0",topic="t"}') == 1

    def test_removed_partition_drops_its_series(self) -> None:
        """After revocation this instance no longer exports the partition."""
        partitions = OwnedPartitions(TrackerConfig())
        partitions.add("t", 0)
        partitions.remove("t", 0)
        assert 'partition="0"' not in scrape(partitions).split("gapwatch_end_to_end")[0]

    def test_process_metrics(self) -> None:
        """gapwatch_up follows the health callback; build info and failures are exported."""
        health = MonitorHealth(checkpoint_failures=2)
        health.subscriber_failures["gap-store"] = 1
        text = scrape(OwnedPartitions(TrackerConfig()), health, is_up=lambda: True)
        assert sample(text, "gapwatch_up ") == 1
        assert sample(text, "gapwatch_checkpoint_failures_total ") == 2
        assert sample(text, 'gapwatch_event_subscriber_failures_total{subscriber="gap-store"}') == 1
        assert "gapwatch_build_info{" in text

    def test_ready_follows_the_readiness_callback(self) -> None:
        """gapwatch_ready is 0 until the callback (what /readyz answers) says ready, then 1."""
        ready = False
        partitions = OwnedPartitions(TrackerConfig())
        assert sample(scrape(partitions, is_ready=lambda: ready), "gapwatch_ready ") == 0
        ready = True
        assert sample(scrape(partitions, is_ready=lambda: ready), "gapwatch_ready ") == 1


class TestLatency:
    def test_histogram_is_cumulative_and_skew_is_clamped(self) -> None:
        """Buckets are cumulative; a future timestamp counts as 0 and as skewed."""
        partitions = OwnedPartitions(TrackerConfig())
        state = partitions.add("t", 0)
        for seconds in (0.003, 0.2, 0.2, 7.0, -2.0):
            state.latency.observe(seconds)
        text = scrape(partitions)
        prefix = "gapwatch_end_to_end_latency_seconds"
        assert sample(text, f'{prefix}_bucket{{le="0.005",topic="t"}}') == 2
        assert sample(text, f'{prefix}_bucket{{le="0.25",topic="t"}}') == 4
        assert sample(text, f'{prefix}_bucket{{le="+Inf",topic="t"}}') == 5
        assert sample(text, f'{prefix}_count{{topic="t"}}') == 5
        assert abs(sample(text, f'{prefix}_sum{{topic="t"}}') - 7.403) < 1e-9
        assert sample(text, 'gapwatch_clock_skewed_records_total{topic="t"}') == 1

    @given(
        st.lists(st.integers(-5_000, 2_000_000) | st.sampled_from([5, 10, 25, 1000, 300_000])),
        st.sampled_from([1_700_000_000.0, 1_700_000_000.123]),
    )
    def test_observe_batch_equals_observe_per_record(self, ages_ms: list[int], now: float) -> None:
        """Counting a batch at once gives the same buckets, skew count and sum as observing
        each record's latency (record ages in ms, bucket bounds included)."""
        one, batch = LatencyHistogram(), LatencyHistogram()
        now_ms = now * 1000.0
        stamps = [round(now_ms) - age for age in ages_ms]
        for ts in stamps:
            one.observe((now_ms - ts) * 0.001)
        batch.observe_batch(stamps, now)
        assert batch.counts == one.counts
        assert batch.clock_skewed == one.clock_skewed
        assert abs(batch.total - one.total) < 1e-6 * max(1.0, one.total)

    def test_bound_belongs_to_its_bucket(self) -> None:
        """A latency equal to a bucket bound is counted in that bucket (le means <=)."""
        histogram = LatencyHistogram()
        histogram.observe(0.005)
        assert histogram.cumulative()[0] == ("0.005", 1.0)
