"""The partitions this instance owns, each with its tracker and the facts read from Kafka.

:class:`OwnedPartitions` is the one mutable registry the consumer loop writes and the
metrics collector and ``/streams`` read. Everything a scrape reads is a plain attribute
(an int or float), so reading from the scrape thread is safe; the set of partitions is
copied atomically (``tuple(dict.values())``) before iterating.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gapwatch.core.config import TrackerConfig
from gapwatch.core.counters import TrackerCounters
from gapwatch.monitor.latency import LatencyHistogram
from gapwatch.monitor.tracking import Tracker, new_tracker


class PartitionState:
    """One owned partition: its tracker and what the monitor knows about its log."""

    __slots__ = (
        "checked_position",
        "checkpointed",
        "checkpointed_at",
        "high_watermark",
        "is_restored",
        "labels",
        "last_record_ts",
        "latency",
        "leader",
        "leader_changes",
        "needs_verify",
        "partition",
        "position",
        "skipped",
        "topic",
        "tracker",
    )

    def __init__(
        self, topic: str, partition: int, tracker: Tracker, latency: LatencyHistogram
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.labels = (topic, str(partition))  # label values of its metrics, made once
        self.tracker = tracker
        self.latency = latency
        self.position: int | None = None  # next offset to read
        self.high_watermark: int | None = None
        self.last_record_ts: float | None = None  # seconds, of the newest record read
        self.skipped = 0  # offsets deleted by retention before being read
        self.is_restored = False
        self.leader: int | None = None
        self.checkpointed: tuple[int, ...] | None = None  # fingerprint at the last checkpoint
        self.checkpointed_at = 0.0
        self.leader_changes = 0  # leader changes seen while owned (each checked for truncation)
        # The read position at the last leader check that saw no change: records below it
        # came from the leader of that time (see gapwatch.monitor.logverify).
        self.checked_position: int | None = None
        self.needs_verify = False  # a leader change whose log check has not succeeded yet

    @property
    def counters(self) -> TrackerCounters:
        """The tracker's counters (plain ints)."""
        return self.tracker.counters

    @property
    def lag(self) -> int | None:
        """Records between the read position and the last high watermark seen."""
        if self.position is None or self.high_watermark is None:
            return None
        return max(0, self.high_watermark - self.position)

    def summary_json(self) -> dict[str, Any]:
        """This partition in the shape of ``/streams`` (see ``PartitionModel``)."""
        return {
            "topic": self.topic,
            "partition": self.partition,
            "restored": self.is_restored,
            "position": self.position,
            "high_watermark": self.high_watermark,
            "lag": self.lag,
            "leader": self.leader,
            "leader_changes": self.leader_changes,
            "records": self.counters.records,
            "streams": [
                {
                    "producer": info.key.producer,
                    "epoch": info.key.epoch,
                    "generation": info.generation,
                    "base_seq": info.base_seq,
                    "high_seq": info.high_seq,
                    "last_offset": info.last_offset,
                    "last_timestamp_ms": info.last_timestamp_ms,
                    "last_seen": info.last_seen,
                    "missing": info.missing,
                    "open_gaps": list(info.open_gaps),
                }
                for info in self.tracker.streams()
            ],
        }


class OwnedPartitions:
    """Registry of owned partitions by ``(topic, partition)``, plus per-topic latency."""

    def __init__(self, tracker_config: TrackerConfig) -> None:
        self._tracker_config = tracker_config
        self._states: dict[tuple[str, int], PartitionState] = {}
        self._latency: dict[str, LatencyHistogram] = {}

    def __len__(self) -> int:
        return len(self._states)

    def __iter__(self) -> Iterator[PartitionState]:
        # A copy taken in one C call: safe while the loop adds or removes partitions.
        return iter(tuple(self._states.values()))

    def get(self, topic: str, partition: int) -> PartitionState | None:
        """The state of an owned partition, or ``None``."""
        return self._states.get((topic, partition))

    def add(self, topic: str, partition: int) -> PartitionState:
        """Start owning a partition with a fresh tracker (restore happens afterwards)."""
        latency = self._latency.get(topic)
        if latency is None:
            latency = self._latency[topic] = LatencyHistogram()
        state = PartitionState(
            topic, partition, new_tracker(topic, partition, self._tracker_config), latency
        )
        self._states[(topic, partition)] = state
        return state

    def adopt(self, state: PartitionState) -> None:
        """Own a partition again with state kept from before a rebalance."""
        self._states[(state.topic, state.partition)] = state

    def remove(self, topic: str, partition: int) -> PartitionState | None:
        """Stop owning a partition; its metrics series disappear with it."""
        return self._states.pop((topic, partition), None)

    def latency_by_topic(self) -> list[tuple[str, LatencyHistogram]]:
        """Latency histograms of every topic ever owned (kept: histograms are cumulative)."""
        return list(tuple(self._latency.items()))
