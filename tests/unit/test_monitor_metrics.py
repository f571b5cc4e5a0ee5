"""The scrape-time collector: series from assignment on, values from the trackers' counters."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from gapwatch.core.config import TrackerConfig
from gapwatch.core.tracker import PartitionTracker
from gapwatch.core.wire import Stamp
from gapwatch.gaps.metrics import PARTITION_COUNTERS
from gapwatch.monitor.health import MonitorHealth
from gapwatch.monitor.metrics.collector import MonitorCollector
from gapwatch.monitor.metrics.topics import TopicTotals
from gapwatch.monitor.state.latency import LatencyHistogram
from gapwatch.monitor.state.partitions import OwnedPartitions, PartitionState


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


def scrape_per_topic(partitions: OwnedPartitions, totals: TopicTotals) -> str:
    registry = CollectorRegistry()
    registry.register(MonitorCollector(partitions, MonitorHealth(), topic_totals=totals))
    return generate_latest(registry).decode()


def series_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("gapwatch_")]


def assigned(
    partitions: OwnedPartitions, totals: TopicTotals, topic: str, partition: int
) -> PartitionState:
    state = partitions.add(topic, partition)
    state.mark_restored()
    totals.note_assigned(state)
    return state


class TestTopicGranularity:
    def test_series_count_does_not_grow_with_partitions(self) -> None:
        """At topic granularity 3 and 300 partitions of two topics give the same series."""
        counts = []
        for partitions_per_topic in (3, 300):
            partitions = OwnedPartitions(TrackerConfig())
            totals = TopicTotals()
            for topic in ("a", "b"):
                for partition in range(partitions_per_topic):
                    assigned(partitions, totals, topic, partition)
            text = scrape_per_topic(partitions, totals)
            assert 'partition="' not in text
            counts.append(len(series_of(text)) - 1)  # partitions_assigned aside
        assert counts[0] == counts[1]

    def test_every_family_exists_per_topic_at_zero(self) -> None:
        """Every per-partition family has a topic series at 0 from assignment on."""
        partitions = OwnedPartitions(TrackerConfig())
        totals = TopicTotals()
        partitions.add("orders", 7)  # not restored yet: its topic is there all the same
        text = scrape_per_topic(partitions, totals)
        for name, _, _ in PARTITION_COUNTERS:
            assert sample(text, f'{name}_total{{topic="orders"}}') == 0
        assert sample(text, 'gapwatch_skipped_records_total{topic="orders"}') == 0
        assert sample(text, 'gapwatch_leader_changes_total{topic="orders"}') == 0
        assert sample(text, 'gapwatch_open_gaps{topic="orders"}') == 0
        assert sample(text, 'gapwatch_consumer_lag_records{topic="orders"}') == 0

    def test_values_are_summed_per_topic(self) -> None:
        """Counters and gauges of a topic's partitions add up; the newest timestamp wins."""
        partitions = OwnedPartitions(TrackerConfig(grace_period=100))
        totals = TopicTotals()
        first = assigned(partitions, totals, "t", 0)
        second = assigned(partitions, totals, "t", 1)
        other = assigned(partitions, totals, "u", 0)
        for offset, seq in enumerate([0, 1, 3]):
            first.tracker.observe(offset, 1000, Stamp("p", 1, seq), now=10.0)
        for offset, seq in enumerate([0, 0]):
            second.tracker.observe(offset, 1000, Stamp("q", 1, seq), now=10.0)
        other.tracker.observe(0, 1000, Stamp("r", 1, 0), now=10.0)
        first.note_read(3, 50.0)
        second.note_read(2, 60.0)
        second.note_fetch_state(2, 12)
        first.note_deleted_unread(4, resume_at=3)
        text = scrape_per_topic(partitions, totals)
        assert sample(text, 'gapwatch_records_total{topic="t"}') == 5
        assert sample(text, 'gapwatch_records_total{topic="u"}') == 1
        assert sample(text, 'gapwatch_duplicate_records_total{topic="t"}') == 1
        assert sample(text, 'gapwatch_skipped_records_total{topic="t"}') == 4
        assert sample(text, 'gapwatch_open_gaps{topic="t"}') == 1
        assert sample(text, 'gapwatch_streams{topic="t"}') == 2
        assert sample(text, 'gapwatch_consumer_lag_records{topic="t"}') == 10
        assert sample(text, 'gapwatch_partition_last_record_timestamp_seconds{topic="t"}') == 60
        assert sample(text, "gapwatch_partitions_assigned ") == 3

    def test_counters_do_not_go_down_when_a_partition_leaves(self) -> None:
        """A revoked partition's records stay in its topic's counter."""
        partitions = OwnedPartitions(TrackerConfig())
        totals = TopicTotals()
        kept = assigned(partitions, totals, "t", 0)
        leaving = assigned(partitions, totals, "t", 1)
        kept.tracker.observe(0, 1000, Stamp("p", 1, 0), now=1.0)
        leaving.tracker.observe(0, 1000, Stamp("q", 1, 0), now=1.0)
        leaving.tracker.observe(1, 1000, Stamp("q", 1, 1), now=1.0)
        partitions.remove("t", 1)
        assert (
            sample(scrape_per_topic(partitions, totals), 'gapwatch_records_total{topic="t"}') == 3
        )
        kept.tracker.observe(1, 1000, Stamp("p", 1, 1), now=1.0)
        assert (
            sample(scrape_per_topic(partitions, totals), 'gapwatch_records_total{topic="t"}') == 4
        )

    def test_counters_hold_while_a_partition_comes_back_from_elsewhere(self) -> None:
        """Revoked, then assigned again as a new state that is still being restored: the
        topic counter keeps what the old state counted, and the new one adds from its
        restore on."""
        partitions = OwnedPartitions(TrackerConfig())
        totals = TopicTotals()
        old = assigned(partitions, totals, "t", 0)
        old.tracker.observe(0, 1000, Stamp("p", 1, 0), now=1.0)
        old.tracker.observe(1, 1000, Stamp("p", 1, 1), now=1.0)
        assert (
            sample(scrape_per_topic(partitions, totals), 'gapwatch_records_total{topic="t"}') == 2
        )
        partitions.remove("t", 0)
        new = partitions.add("t", 0)
        restoring = sample(
            scrape_per_topic(partitions, totals), 'gapwatch_records_total{topic="t"}'
        )
        new.mark_restored()
        totals.note_assigned(new)
        new.tracker.observe(2, 1000, Stamp("p", 1, 2), now=1.0)
        later = sample(scrape_per_topic(partitions, totals), 'gapwatch_records_total{topic="t"}')
        assert (restoring, later) == (2, 3)

    def test_a_topic_no_longer_owned_keeps_its_counters(self) -> None:
        """Counters of a topic whose every partition left stay exported (as histograms do)."""
        partitions = OwnedPartitions(TrackerConfig())
        totals = TopicTotals()
        state = assigned(partitions, totals, "t", 0)
        state.tracker.observe(0, 1000, Stamp("p", 1, 0), now=1.0)
        scrape_per_topic(partitions, totals)
        partitions.remove("t", 0)
        text = scrape_per_topic(partitions, totals)
        assert sample(text, 'gapwatch_records_total{topic="t"}') == 1
        assert 'gapwatch_open_gaps{topic="t"}' not in text

    def test_restored_totals_do_not_jump_the_counter(self) -> None:
        """A partition restored with earlier totals adds only what it reads from then on."""
        source = PartitionTracker("t", 0, config=TrackerConfig())
        for seq in range(5):
            source.observe(seq, 1000, Stamp("p", 1, seq), now=1.0)
        partitions = OwnedPartitions(TrackerConfig())
        totals = TopicTotals()
        state = partitions.add("t", 0)
        before = sample(scrape_per_topic(partitions, totals), 'gapwatch_records_total{topic="t"}')
        state.restore(source.snapshot(), TrackerConfig())
        state.mark_restored()
        totals.note_assigned(state)
        after = sample(scrape_per_topic(partitions, totals), 'gapwatch_records_total{topic="t"}')
        state.tracker.observe(5, 1000, Stamp("p", 1, 5), now=1.0)
        later = sample(scrape_per_topic(partitions, totals), 'gapwatch_records_total{topic="t"}')
        assert (before, after, later) == (0, 0, 1)

    def test_given_back_partition_is_counted_once(self) -> None:
        """Revoked and re-adopted with its state (same rebalance): nothing counted twice."""
        partitions = OwnedPartitions(TrackerConfig())
        totals = TopicTotals()
        state = assigned(partitions, totals, "t", 0)
        state.tracker.observe(0, 1000, Stamp("p", 1, 0), now=1.0)
        partitions.remove("t", 0)
        for scrape_between in (True, False):
            if scrape_between:
                scrape_per_topic(partitions, totals)
            partitions.adopt(state)
            totals.note_assigned(state)
            state.tracker.observe(1, 1000, Stamp("p", 1, 1), now=1.0)
            partitions.remove("t", 0)
        partitions.adopt(state)
        totals.note_assigned(state)
        text = scrape_per_topic(partitions, totals)
        assert sample(text, 'gapwatch_records_total{topic="t"}') == 3

    @given(
        steps=st.lists(
            st.tuples(st.sampled_from(["read", "revoke", "assign", "scrape"]), st.integers(0, 3)),
            max_size=40,
        )
    )
    def test_topic_counter_never_decreases(self, steps: list[tuple[str, int]]) -> None:
        """Whatever partitions come and go, a scrape never shows a smaller records total,
        and the total is every record read while owned."""
        partitions = OwnedPartitions(TrackerConfig())
        totals = TopicTotals()
        states = {}
        read_while_owned = 0
        last = 0.0
        for action, partition in steps:
            state = partitions.get("t", partition)
            if action == "read" and state is not None:
                state.tracker.observe_unstamped()
                state.tracker.observe(0, 1000, Stamp(f"p{partition}", 1, 0), now=1.0)
                read_while_owned += 1
            elif action == "revoke" and state is not None:
                partitions.remove("t", partition)
            elif action == "assign" and state is None:
                kept = states.get(partition)
                if kept is not None and partition % 2 == 0:
                    partitions.adopt(kept)
                    state = kept
                else:
                    state = partitions.add("t", partition)
                state.mark_restored()
                totals.note_assigned(state)
                states[partition] = state
            elif action == "scrape" and states:
                value = sample(
                    scrape_per_topic(partitions, totals), 'gapwatch_records_total{topic="t"}'
                )
                assert value >= last
                last = value
        text = scrape_per_topic(partitions, totals)
        if states:
            assert sample(text, 'gapwatch_records_total{topic="t"}') >= last
            assert sample(text, 'gapwatch_unstamped_records_total{topic="t"}') == read_while_owned
