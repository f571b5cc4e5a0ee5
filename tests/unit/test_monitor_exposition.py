"""The lean /metrics renderer against prometheus-client's own text rendering."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from gapwatch.core.config import TrackerConfig
from gapwatch.core.wire import Stamp
from gapwatch.gaps.metrics import Family, HistogramFamily, ScalarFamily, to_metric
from gapwatch.monitor.health import MonitorHealth
from gapwatch.monitor.metrics.collector import MonitorCollector
from gapwatch.monitor.metrics.exposition import (
    LineCache,
    MetricsPage,
    format_value,
    render,
    render_chunks,
)
from gapwatch.monitor.state.partitions import OwnedPartitions

Parsed = dict[str, tuple[str, str, list[tuple[str, tuple[tuple[str, str], ...], Any]]]]


def parse(text: str) -> Parsed:
    """Every family as (type, help, samples), samples sorted; NaN made comparable."""
    parsed: Parsed = {}
    for family in text_string_to_metric_families(text):
        samples = sorted(
            (
                s.name,
                tuple(sorted(s.labels.items())),
                "NaN" if math.isnan(s.value) else s.value,
            )
            for s in family.samples
        )
        parsed[family.name] = (family.type, family.documentation, samples)
    return parsed


class _Families(Collector):
    def __init__(self, families: list[Family]) -> None:
        self._families = families

    def collect(self) -> Any:
        return [to_metric(f) for f in self._families]


def reference(families: list[Family]) -> str:
    """What prometheus-client writes for the same families."""
    registry = CollectorRegistry()
    registry.register(_Families(families))
    return generate_latest(registry).decode()


def busy_partitions() -> OwnedPartitions:
    """A few partitions with gaps, duplicates, lag, timestamps and latencies."""
    partitions = OwnedPartitions(TrackerConfig(grace_period=100))
    for index in range(6):
        state = partitions.add(f"topic-{index % 2}", index)
        for offset, seq in enumerate([0, 1, 2, 5, 2, 9, 3]):
            state.tracker.observe(offset, 1_700_000_000_000, Stamp(f"p{index}", 1, seq), now=10.0)
        state.note_deleted_unread(index * 1_234_567, resume_at=7)
        state.note_fetch_state(7, 2_000_000 + index)
        for leader in range(index + 1):  # the first sight of a leader is no change
            state.note_leader(leader)
        if index % 3:
            state.note_read(7, 1_712_345_678.125 + index)
        for seconds in (0.001, 0.3, 42.0, 1e9, -1.0):
            state.latency.observe(seconds)
    return partitions


class TestFormatValue:
    @given(st.floats(allow_nan=True, allow_infinity=True))
    def test_floats_match_prometheus_client(self, value: float) -> None:
        """Every float, including +Inf/-Inf/NaN and exponents, formats as prometheus-client."""
        assert format_value(value) == floatToGoString(value)

    @given(st.integers(min_value=-(2**70), max_value=2**70))
    def test_integers_match_prometheus_client(self, value: int) -> None:
        """Integer counters (the fast path and huge ones) format as prometheus-client."""
        assert format_value(value) == floatToGoString(value)

    def test_go_style_exponent(self) -> None:
        """Seven integer digits switch to Go's exponent form."""
        assert format_value(1_234_567) == "1.234567e+06"
        assert format_value(1_000_000.0) == "1e+06"
        assert format_value(999_999) == "999999.0"


class TestRender:
    def test_monitor_families_parse_to_the_same_samples(self) -> None:
        """The monitor's whole output equals prometheus-client's, sample for sample."""
        health = MonitorHealth(checkpoints=3, commit_failures=1)
        health.subscriber_failures["gap-store"] = 2
        families = MonitorCollector(busy_partitions(), health, is_up=lambda: True).read()
        lean = render(families)
        expected = parse(reference(families))
        assert parse(lean) == expected
        assert len(expected) == len(families)
        # Non-trivial values made it through: a huge counter, a float gauge, a histogram.
        assert 'gapwatch_skipped_records_total{partition="5",topic="topic-1"} 6.172835e+06' in lean
        assert 'gapwatch_end_to_end_latency_seconds_bucket{le="+Inf",topic="topic-0"} 15.0' in (
            lean
        )

    def test_text_lines_are_identical_to_prometheus_client(self) -> None:
        """Not just equivalent: the same lines (order of families included)."""
        families = MonitorCollector(busy_partitions(), MonitorHealth()).read()
        assert render(families) == reference(families)

    def test_escaping_of_label_values_and_help(self) -> None:
        """Backslash, double quote and newline in label values and HELP are escaped."""
        families: list[Family] = [
            ScalarFamily.from_samples(
                "odd",
                "counter",
                'help with \\ backslash, "quotes"\nand a newline',
                ("who", "b"),
                [(('a\\b"c\nd', "x"), 1), (("plain", "é ü"), 2.5)],
            ),
            ScalarFamily.from_samples("lonely", "gauge", "no labels", (), [((), float("nan"))]),
        ]
        lean = render(families)
        assert lean == reference(families)
        assert parse(lean) == parse(reference(families))
        assert 'odd_total{b="x",who="a\\\\b\\"c\\nd"} 1.0' in lean

    def test_histogram_infinities_and_nan(self) -> None:
        """Histogram buckets, +Inf bound, an infinite count and a NaN sum."""
        families: list[Family] = [
            HistogramFamily(
                "h",
                "a histogram",
                ("topic",),
                [
                    (("t",), [("0.1", 1.0), ("1.0", 3.0), ("+Inf", float("inf"))], float("nan")),
                    (("u",), [("0.1", 0.0), ("1.0", 0.0), ("+Inf", 2.0)], 12_345_678.5),
                ],
            )
        ]
        lean = render(families)
        assert lean == reference(families)
        assert 'h_count{topic="t"} +Inf' in lean
        assert 'h_sum{topic="t"} NaN' in lean
        assert 'h_sum{topic="u"} 1.23456785e+07' in lean

    def test_chunks_concatenate_to_the_whole(self) -> None:
        """A family bigger than a chunk is split, every family is a piece of its own, and
        nothing is lost or repeated."""
        samples = [((str(i),), i) for i in range(1200)]
        families: list[Family] = [
            ScalarFamily.from_samples("big", "gauge", "many", ("i",), samples),
            ScalarFamily.from_samples("small", "counter", "few", (), [((), 1)]),
        ]
        chunks = list(render_chunks(families))
        assert len(chunks) == 4  # 1 header + 1200 lines in pieces of 500, then "small"
        assert chunks[-1].startswith("# HELP small_total")
        assert "".join(chunks) == reference(families)


class TestLineCache:
    def test_changed_values_are_rendered_again_and_the_rest_reused(self) -> None:
        """Across scrapes with a cache, each render equals an uncached one, although
        values change, change type, go NaN, and series come and go."""
        cache = LineCache()
        rounds: list[list[tuple[tuple[str, ...], float]]] = [
            [(("a",), 1), (("b",), 2.5), (("c",), 7)],
            [(("a",), 1), (("b",), 3.5), (("c",), 7.0)],  # 7 -> 7.0: equal, another type
            [(("a",), float("nan")), (("b",), 3.5), (("d",), 0)],  # c gone, d new
            [(("a",), float("nan")), (("b",), 1e21), (("d",), 0)],
        ]
        for samples in rounds:
            families: list[Family] = [
                ScalarFamily.from_samples("f", "counter", "help", ("k",), samples)
            ]
            assert render(families, cache) == render(families) == reference(families)

    def test_unchanged_lines_are_the_same_objects(self) -> None:
        """An idle series is not formatted again: its line is the one rendered before,
        while a changed neighbour gets a new line."""
        cache = LineCache()
        labels = [("a",), ("b",)]
        first = ScalarFamily("f", "gauge", "h", ("k",), labels, [5, 6])
        render([first], cache)
        kept = cache.swap("f", (labels, [5, 6], []))
        assert kept is not None
        line_a = kept[2][0]
        cache.swap("f", kept)
        second = ScalarFamily("f", "gauge", "h", ("k",), labels, [5, 7])
        assert render([second], cache) == reference([second])
        now = cache.swap("f", (labels, [], []))
        assert now is not None
        assert now[2][0] is line_a
        assert now[2][1] == 'f{k="b"} 7.0\n'

    def test_a_family_whose_series_changed_is_rendered_afresh(self) -> None:
        """Another order or set of series (a rebalance) never reuses lines by position."""
        cache = LineCache()
        before = ScalarFamily("f", "gauge", "h", ("k",), [("a",), ("b",)], [1, 2])
        after = ScalarFamily("f", "gauge", "h", ("k",), [("b",), ("a",)], [1, 2])
        assert render([before], cache) == reference([before])
        assert render([after], cache) == reference([after])

    def test_label_blocks_are_bounded(self) -> None:
        cache = LineCache(max_blocks=10)
        for round_ in range(5):
            samples = [((f"{round_}-{i}",), i) for i in range(8)]
            families: list[Family] = [ScalarFamily.from_samples("f", "gauge", "h", ("k",), samples)]
            assert render(families, cache) == reference(families)
            assert len(cache.blocks()) <= 10 + 8


class TestMetricsPage:
    async def test_registry_metrics_are_added_and_gapwatch_not_repeated(self) -> None:
        """The page has the registry's own metrics once and each gapwatch family once,
        even though the collector is registered in that registry too."""
        registry = CollectorRegistry()
        Counter("other_things", "something else", registry=registry).inc(4)
        collector = MonitorCollector(busy_partitions(), MonitorHealth())
        registry.register(collector)
        text = (await MetricsPage(registry=registry, collector=collector).render()).decode()
        assert text.count("# TYPE gapwatch_records_total counter") == 1
        assert "other_things_total 4.0" in text
        assert parse(text) == parse(generate_latest(registry).decode())

    async def test_collector_is_muted_only_inside_the_page(self) -> None:
        """After a page render, generate_latest(registry) still shows gapwatch's metrics."""
        registry = CollectorRegistry()
        collector = MonitorCollector(busy_partitions(), MonitorHealth())
        registry.register(collector)
        await MetricsPage(registry=registry, collector=collector).render()
        assert "gapwatch_records_total{" in generate_latest(registry).decode()
