"""The partitions this instance owns, each with its tracker and the facts read from Kafka.

:class:`OwnedPartitions` is the one mutable registry the consumer loop writes and the
metrics collector and ``/streams`` read; each :class:`PartitionState` is changed only
through its own methods. Everything a scrape reads is a plain attribute
(an int or float), so reading from the scrape thread is safe; the set of partitions is
copied atomically (``tuple(dict.values())``) before iterating.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any, Protocol

from gapwatch.core.config import TrackerConfig
from gapwatch.core.counters import TrackerCounters
from gapwatch.core.events import Event
from gapwatch.core.model import Gap, ProducerReport, StreamInfo
from gapwatch.core.tracker import PartitionTracker
from gapwatch.core.wire import Stamp
from gapwatch.monitor.state.latency import LatencyHistogram


class Tracker(Protocol):
    """What the monitor needs of one partition's tracker.

    The monitor only uses what this protocol lists; :func:`new_tracker` and
    :func:`restore_tracker` are the one place that constructs the core's
    ``PartitionTracker``. Keeping the surface this small lets the consumer loop,
    checkpoints and HTTP views be read (and changed) without the tracker's internals.
    """

    @property
    def counters(self) -> TrackerCounters:
        """Plain int counters, read by metrics at scrape time."""
        ...

    @property
    def topic(self) -> str:
        """The topic of the partition tracked."""
        ...

    @property
    def partition(self) -> int:
        """The partition tracked."""
        ...

    def observe(self, offset: int, timestamp_ms: int, stamp: Stamp, now: float) -> Sequence[Event]:
        """One stamped record."""
        ...

    def observe_fields(
        self, offset: int, timestamp_ms: int, producer: str, epoch: int, seq: int, now: float
    ) -> Sequence[Event]:
        """One stamped record, its stamp given as validated fields (the record path)."""
        ...

    def observe_unstamped(self) -> None:
        """One record without gapwatch headers."""
        ...

    def observe_malformed(self, reason: str) -> None:
        """One record with damaged gapwatch headers."""
        ...

    def note_read_position(
        self, *, read_offset: int, high_watermark: int, observed_at: float
    ) -> Sequence[Event]:
        """The monitor has read everything below ``read_offset``; HW seen at ``observed_at``."""
        ...

    def tick(self, now: float) -> Sequence[Event]:
        """Time passes: confirmations and evictions that are due."""
        ...

    def apply_producer_report(self, report: ProducerReport, now: float) -> Sequence[Event]:
        """A producer's report about one of its streams on this partition."""
        ...

    def log_truncated(self, new_end_offset: int, now: float) -> Sequence[Event]:
        """The log now ends at ``new_end_offset``, below offsets already read."""
        ...

    def log_diverged_at(
        self, offset: int, now: float, *, beyond_ring: bool = False
    ) -> Sequence[Event]:
        """Records read at and after ``offset`` are no longer in the log."""
        ...

    def verify_from(self) -> int | None:
        """The oldest offset whose record the tracker can verify."""
        ...

    def newest_read(self, before: int | None = None) -> tuple[int, Stamp] | None:
        """The newest (offset, stamp) below ``before`` the tracker can verify."""
        ...

    def find_divergence(
        self, log: Iterable[tuple[int, Stamp | None]], *, log_start: int, log_end: int
    ) -> tuple[int, bool] | None:
        """First offset where the re-read log differs from what was read (+ beyond_ring)."""
        ...

    def records_skipped(self, first_offset: int, last_offset: int, now: float) -> Sequence[Event]:
        """Retention deleted these offsets before they were read (returns RecordsSkipped)."""
        ...

    def snapshot(self) -> bytes:
        """The tracker's state as bytes, for a checkpoint."""
        ...

    def gaps(self) -> Iterable[Gap]:
        """The gaps the tracker currently holds (open ones at least)."""
        ...

    def streams(self) -> Iterable[StreamInfo]:
        """A read-only view of every tracked stream."""
        ...


def new_tracker(topic: str, partition: int, config: TrackerConfig) -> Tracker:
    """A fresh tracker for one partition."""
    return PartitionTracker(topic, partition, config=config)


def restore_tracker(topic: str, partition: int, config: TrackerConfig, snapshot: bytes) -> Tracker:
    """A tracker restored from checkpoint bytes (raises ``SnapshotError`` if unusable)."""
    return PartitionTracker.restore(snapshot, topic=topic, partition=partition, config=config)


class PartitionState:
    """One owned partition: its tracker and what the monitor knows about its log.

    Every attribute is read-only from outside; the consumer loop, the log checks, the
    rebalance handler and the checkpoint rounds change it through the methods below, each
    named for the fact it records, so the rules that tie the fields together (a leader
    change needs a log check; a verified log moves the checked position) live here.
    """

    __slots__ = (
        "_checked_position",
        "_checkpointed",
        "_checkpointed_at",
        "_high_watermark",
        "_is_restored",
        "_last_record_ts",
        "_leader",
        "_leader_changes",
        "_needs_verify",
        "_position",
        "_skipped",
        "_tracker",
        "labels",
        "latency",
        "partition",
        "topic",
    )

    def __init__(
        self, topic: str, partition: int, tracker: Tracker, latency: LatencyHistogram
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.labels = (topic, str(partition))  # label values of its metrics, made once
        self.latency = latency
        self._tracker = tracker
        self._position: int | None = None
        self._high_watermark: int | None = None
        self._last_record_ts: float | None = None
        self._skipped = 0
        self._is_restored = False
        self._leader: int | None = None
        self._checkpointed: tuple[int, ...] | None = None
        self._checkpointed_at = 0.0
        self._leader_changes = 0
        self._checked_position: int | None = None
        self._needs_verify = False

    # --- what others read ---------------------------------------------------------------

    @property
    def tracker(self) -> Tracker:
        """The partition's tracker (replaced only by :meth:`restore`)."""
        return self._tracker

    @property
    def position(self) -> int | None:
        """The next offset to read."""
        return self._position

    @property
    def high_watermark(self) -> int | None:
        """The high watermark of the latest fetch response."""
        return self._high_watermark

    @property
    def last_record_ts(self) -> float | None:
        """Timestamp (seconds) of the newest record read."""
        return self._last_record_ts

    @property
    def skipped(self) -> int:
        """Offsets deleted by retention before they were read."""
        return self._skipped

    @property
    def is_restored(self) -> bool:
        """Whether the partition's start (checkpoint or offset) has been set up."""
        return self._is_restored

    @property
    def leader(self) -> int | None:
        """The partition leader's broker id, as last seen."""
        return self._leader

    @property
    def leader_changes(self) -> int:
        """Leader changes seen while owned (each checked for truncation)."""
        return self._leader_changes

    @property
    def checked_position(self) -> int | None:
        """The read position at the last leader check that saw no change: records below it
        came from the leader of that time (see :mod:`gapwatch.monitor.ingest.logcheck`)."""
        return self._checked_position

    @property
    def needs_verify(self) -> bool:
        """Whether a leader change (or a restore) waits for a successful log check."""
        return self._needs_verify

    @property
    def checkpointed(self) -> tuple[int, ...] | None:
        """The fingerprint of the state at the last checkpoint written."""
        return self._checkpointed

    @property
    def checkpointed_at(self) -> float:
        """When the last checkpoint of this partition was taken."""
        return self._checkpointed_at

    # --- what others change -------------------------------------------------------------

    def restore(self, snapshot: bytes, config: TrackerConfig) -> None:
        """Replace the tracker with one restored from checkpoint bytes, and have the log
        checked at the next leader check (an unclean election while no monitor ran is no
        leader change anyone saw). Raises ``SnapshotError`` and keeps the tracker if the
        bytes are unusable."""
        self._tracker = restore_tracker(self.topic, self.partition, config, snapshot)
        self._needs_verify = True

    def mark_restored(self) -> None:
        """The partition's start is set up: facts may be reported to its tracker."""
        self._is_restored = True

    def seek(self, position: int) -> None:
        """Reading continues at ``position`` (a start, a resume after a log change)."""
        self._position = position

    def note_read(self, position: int, last_record_ts: float) -> None:
        """A fetched batch was tracked: the next offset, the newest record's time."""
        self._position = position
        self._last_record_ts = last_record_ts

    def note_fetch_state(self, position: int, high_watermark: int) -> None:
        """The consumer's position and the high watermark of the latest fetch."""
        self._position = position
        self._high_watermark = high_watermark

    def note_deleted_unread(self, count: int, resume_at: int) -> None:
        """Retention deleted ``count`` offsets before they were read; resume at the log start."""
        self._skipped += count
        self._position = resume_at

    def note_truncated(self, resume_at: int) -> None:
        """The log was truncated below the read position: resume at ``resume_at``, which
        was read from the current leader."""
        self._position = self._checked_position = resume_at

    def note_leader(self, leader: int) -> bool:
        """Record the partition's current leader; whether the log behind it must be checked.

        A change (not the first sight) is counted and needs a check, and so does an
        earlier one whose check has not succeeded yet. Otherwise everything read so far came
        from this leader (the fetcher routes by the same metadata), so the read position
        becomes the checked one.
        """
        if leader == self._leader or self._leader is None:
            self._leader = leader
            if not self._needs_verify:
                self._checked_position = self._position
                return False
            return True
        self._leader_changes += 1
        self._leader = leader
        self._needs_verify = True
        return True

    def note_verified(self, resume_at: int | None) -> None:
        """The log check succeeded; reading resumes at ``resume_at`` if it diverged."""
        if resume_at is not None:
            self._position = resume_at
        self._needs_verify = False
        self._checked_position = self._position

    def note_checkpointed(self, fingerprint: tuple[int, ...], taken_at: float) -> None:
        """A checkpoint of the state with ``fingerprint``, taken at ``taken_at``, committed."""
        self._checkpointed = fingerprint
        self._checkpointed_at = taken_at

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

    def __init__(
        self, tracker_config: TrackerConfig, *, latency_per_partition: Collection[str] = ()
    ) -> None:
        self._tracker_config = tracker_config
        self._states: dict[tuple[str, int], PartitionState] = {}
        self._latency: dict[str, LatencyHistogram] = {}
        # The canary topic: its partitions belong to different brokers, so each gets its
        # own histogram (merged into the topic's at scrape time).
        self._per_partition = frozenset(latency_per_partition)
        self._partition_latency: dict[tuple[str, int], LatencyHistogram] = {}

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
        if topic in self._per_partition:
            latency = self._partition_latency.get((topic, partition))
            if latency is None:
                latency = self._partition_latency[(topic, partition)] = LatencyHistogram()
        else:
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
        """Latency histograms of every topic ever owned (kept: histograms are cumulative);
        a topic with histograms per partition gets their sum."""
        result = list(tuple(self._latency.items()))
        merged: dict[str, LatencyHistogram] = {}
        for (topic, _partition), histogram in tuple(self._partition_latency.items()):
            merged.setdefault(topic, LatencyHistogram()).add(histogram)
        result.extend(merged.items())
        return result

    def latency_by_partition(self, topic: str) -> dict[int, LatencyHistogram]:
        """The histogram of each partition of ``topic`` ever owned, if it is one with
        histograms per partition (``latency_per_partition``), else nothing."""
        return {p: h for (t, p), h in tuple(self._partition_latency.items()) if t == topic}
