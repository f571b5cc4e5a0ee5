"""Cost of one ``/metrics`` scrape at each metrics granularity, without Kafka.

Builds the monitor's partition registry with ``--partitions`` owned partitions spread over
``--topics`` topics, each tracker fed a few stamped records, and times what a scrape does
on the event loop: :meth:`MonitorCollector.read` and rendering every family with a
:class:`LineCache` (as ``MetricsPage`` does), with one record added to every partition
between scrapes so that most lines change (the worst case for the cache); the two
granularities scrape in turns. Reported per
partition count: series and median milliseconds per scrape at ``partition`` granularity
(the baseline, measured in the same run) and at ``topic``, and their ratio.

Run: ``.venv/bin/python bench/bench_metrics.py [--partitions 500 5000] [--topics 10]``
(a few seconds).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from gapwatch.core.config import TrackerConfig
from gapwatch.core.wire import Stamp
from gapwatch.monitor.health import MonitorHealth
from gapwatch.monitor.metrics.collector import MonitorCollector
from gapwatch.monitor.metrics.exposition import LineCache, render_chunks
from gapwatch.monitor.metrics.topics import TopicTotals
from gapwatch.monitor.state.partitions import OwnedPartitions


def owned(partitions: int, topics: int, totals: TopicTotals | None) -> OwnedPartitions:
    """``partitions`` restored partitions over ``topics`` topics, a few records each."""
    registry = OwnedPartitions(TrackerConfig())
    for i in range(partitions):
        state = registry.add(f"topic-{i % topics}", i // topics)
        state.mark_restored()
        if totals is not None:
            totals.note_assigned(state)
        for seq in range(3):
            state.tracker.observe(seq, 1_000, Stamp("p", 1, seq), now=1.0)
        state.note_read(3, 1.0)
    return registry


def scrape_ms(partitions: int, topics: int, scrapes: int) -> list[tuple[int, float]]:
    """(series of one scrape, median milliseconds per scrape) at partition, then topic
    granularity; the two scrape in turns, so both see the same machine noise."""
    setups = []
    for totals in (None, TopicTotals()):
        registry = owned(partitions, topics, totals)
        collector = MonitorCollector(registry, MonitorHealth(), topic_totals=totals)
        setups.append((registry, collector, LineCache(), []))
    texts = ["", ""]
    for round_ in range(scrapes):
        for i, (registry, collector, cache, times) in enumerate(setups):
            for state in registry:
                state.tracker.observe(3 + round_, 1_000, Stamp("p", 1, 3 + round_), now=1.0)
            before = time.perf_counter()
            texts[i] = "".join(render_chunks(collector.read(), cache))
            times.append(time.perf_counter() - before)
    return [
        (
            sum(1 for line in text.splitlines() if not line.startswith("#")),
            statistics.median(times) * 1000,
        )
        for text, (_, _, _, times) in zip(texts, setups, strict=True)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--partitions", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--scrapes", type=int, default=15)
    args = parser.parse_args()
    print(f"{args.topics} topics; median of {args.scrapes} scrapes, every partition changed")
    for partitions in args.partitions:
        (base_series, base), (series, topic) = scrape_ms(partitions, args.topics, args.scrapes)
        print(
            f"{partitions:>6} partitions: partition granularity {base_series} series "
            f"{base:.2f} ms; topic granularity {series} series {topic:.2f} ms "
            f"(ratio {topic / base:.2f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
