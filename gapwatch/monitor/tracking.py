"""The thin seam between the monitor and the core's tracker.

The monitor only uses what :class:`Tracker` lists; :func:`new_tracker` is the one place
that constructs the core's ``PartitionTracker``. Keeping the surface this small lets the
consumer loop, checkpoints and HTTP views be read (and changed) without the tracker's
internals.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from gapwatch.core.config import TrackerConfig
from gapwatch.core.counters import TrackerCounters
from gapwatch.core.events import Event
from gapwatch.core.model import Gap, ProducerReport, StreamInfo
from gapwatch.core.tracker import PartitionTracker
from gapwatch.core.wire import Stamp


class Tracker(Protocol):
    """What the monitor needs of one partition's tracker."""

    @property
    def counters(self) -> TrackerCounters:
        """Plain int counters, read by metrics at scrape time."""
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
