"""Per-topic sums of the per-partition metrics, for ``metrics_granularity: topic``.

At topic granularity the number of series must not grow with the partition count, so each
per-partition family is summed per topic. Gauges (open gaps, streams, lag) are summed over
the partitions owned now; the newest record timestamp is the newest of them. Counters need
more care: a plain sum would go down whenever a partition is revoked from this instance,
and Prometheus reads any decrease as a counter reset, so ``increase()`` would report the
whole remaining total as new (a false loss alert after every rebalance). And a partition
restored from its checkpoint arrives with its earlier totals, which would look like a jump.

So a topic counter counts what this instance saw itself, from the moment each partition
was restored here (:meth:`TopicTotals.note_assigned`), and keeps what a revoked partition
added: it never goes down while the process runs, and starts at 0 like any counter. Across
instances ``sum by (topic) (rate(...))`` is then the topic's rate, as at partition
granularity; records read again after a handover (those after the previous owner's last
checkpoint) are counted by both owners, exactly as the per-partition series count them.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from gapwatch.gaps.metrics import PARTITION_COUNTERS
from gapwatch.monitor.state.partitions import PartitionState

# The tracker counters of PARTITION_COUNTERS, in order; then the two the partition state
# keeps itself (skipped records, leader changes): the columns of a topic's counters.
_TRACKER_COUNTER_VALUES = operator.attrgetter(
    *(attribute for _, _, attribute in PARTITION_COUNTERS)
)
COUNTER_COLUMNS = len(PARTITION_COUNTERS) + 2
_ROW_VALUES = operator.attrgetter(
    *(attribute for _, _, attribute in PARTITION_COUNTERS), "open_gaps", "streams"
)


def counter_values(state: PartitionState) -> tuple[int, ...]:
    """The partition's counters, in the column order of :class:`TopicSums`."""
    return (*_TRACKER_COUNTER_VALUES(state.tracker.counters), state.skipped, state.leader_changes)


def _row(state: PartitionState) -> tuple[int, ...]:
    """:func:`counter_values`, then the gauges open gaps, streams and lag."""
    *tracker_values, open_gaps, streams = _ROW_VALUES(state.tracker.counters)
    return (
        *tracker_values,
        state.skipped,
        state.leader_changes,
        open_gaps,
        streams,
        state.lag or 0,
    )


@dataclass(frozen=True, slots=True)
class TopicSums:
    """One topic's values at a scrape: counters in :func:`counter_values` order, gauges
    over the ``owned`` partitions of the topic (none: only its counters are exported)."""

    topic: str
    counters: tuple[int, ...]
    owned: int
    open_gaps: int
    streams: int
    lag: int
    last_record_ts: float | None


class TopicTotals:
    """Counters per topic that never decrease across rebalances (see the module docstring).

    :meth:`note_assigned` is called on the event loop for each partition once it is
    restored; :meth:`read` at each scrape (possibly from another thread, hence the lock).
    A revoked partition is noticed at the next scrape or re-assignment: its state object
    is no longer changed once revoked, so what it added up to then is still exact.
    """

    __slots__ = ("_counted", "_lock", "_offsets")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Partitions counted since their restore here, by their label values (topic,
        # partition), which each state makes once.
        self._counted: dict[tuple[str, ...], PartitionState] = {}
        # Per topic: what revoked partitions added, minus the baselines of counted ones; a
        # topic's counters are this plus the counted partitions' current values.
        self._offsets: dict[str, list[int]] = {}

    def note_assigned(self, state: PartitionState) -> None:
        """``state`` was restored here: count what it adds from now on."""
        with self._lock:
            self._retire(state.labels)
            offsets = self._offsets_of(state.topic)
            for i, value in enumerate(counter_values(state)):
                offsets[i] -= value
            self._counted[state.labels] = state

    def read(self, states: Iterable[PartitionState]) -> list[TopicSums]:
        """Every topic ever counted or owned now, sorted by name, with its sums."""
        by_topic: dict[str, list[PartitionState]] = {}
        for state in states:
            group = by_topic.get(state.topic)
            if group is None:
                by_topic[state.topic] = [state]
            else:
                group.append(state)
        with self._lock:
            # Values and baselines from the same moment (note_assigned may run meanwhile
            # when read from another thread). One row per owned partition: its counters
            # (COUNTER_COLUMNS), then the gauges.
            rows = {topic: [_row(s) for s in group] for topic, group in by_topic.items()}
            counted = self._counted
            # Per topic, whether each owned state is the one counted since its restore (the
            # object, not the key: a partition assigned again from a checkpoint is a new
            # state, uncounted until restored).
            is_counted = {
                topic: [counted.get(s.labels) is s for s in group]
                for topic, group in by_topic.items()
            }
            if sum(sum(flags) for flags in is_counted.values()) < len(counted):
                # A counted partition is no longer owned (revoked since the last scrape),
                # or owned again by a new state not restored yet: what it added is kept.
                matched = {
                    s.labels
                    for topic, group in by_topic.items()
                    for s, flag in zip(group, is_counted[topic], strict=True)
                    if flag
                }
                for key in [key for key in counted if key not in matched]:
                    self._retire(key)
            offsets = {topic: list(values) for topic, values in self._offsets.items()}
        sums = []
        for topic in sorted(by_topic.keys() | offsets.keys()):
            totals = offsets.get(topic) or [0] * COUNTER_COLUMNS
            group = by_topic.get(topic, [])
            topic_rows = rows.get(topic, [])
            columns = list(map(sum, zip(*topic_rows, strict=True))) or [0] * (COUNTER_COLUMNS + 3)
            flags = is_counted.get(topic, [])
            counter_sums = columns[:COUNTER_COLUMNS]
            if not all(flags):
                counted_rows = [row for row, flag in zip(topic_rows, flags, strict=True) if flag]
                counter_sums = list(map(sum, zip(*counted_rows, strict=True)))
                counter_sums = (counter_sums or [0] * (COUNTER_COLUMNS + 3))[:COUNTER_COLUMNS]
            totals = [base + column for base, column in zip(totals, counter_sums, strict=True)]
            timestamps = [ts for s in group if (ts := s.last_record_ts) is not None]
            open_gaps, streams, lag = columns[COUNTER_COLUMNS:]
            sums.append(
                TopicSums(
                    topic,
                    tuple(totals),
                    len(group),
                    open_gaps,
                    streams,
                    lag,
                    max(timestamps) if timestamps else None,
                )
            )
        return sums

    def _offsets_of(self, topic: str) -> list[int]:
        offsets = self._offsets.get(topic)
        if offsets is None:
            offsets = self._offsets[topic] = [0] * COUNTER_COLUMNS
        return offsets

    def _retire(self, key: tuple[str, ...]) -> None:
        """Stop counting ``key``'s partition; what it added stays in its topic's counters."""
        state = self._counted.pop(key, None)
        if state is None:
            return
        offsets = self._offsets_of(state.topic)
        for i, value in enumerate(counter_values(state)):
            offsets[i] += value
