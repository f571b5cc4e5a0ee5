"""What one consumer group has *processed*: marks and ``now`` in, events out, no I/O.

The pure core of the verifier. One :class:`PartitionTracker` per (topic, partition) of
the group sees the records the application *marks processed*, in the order it marks
them, so the tracker's rules (``docs/tracker.md``) answer the consumer-side questions:
a sequence never processed is a gap, one processed twice a duplicate. The rules that
belong to the verifier, in order:

V1 mark       -- a record marked processed is observed by its partition's tracker
                 (R1-R10; unstamped and malformed records only count, R15). Nothing else
                 is observed: records fetched but not marked are not "seen".
V2 frontier   -- the partition's processed frontier is one past the highest offset marked
                 since this instance took the partition. It starts at the offset where
                 the application resumes (the group's committed offset, else the first
                 position observed), never at the restored checkpoint's: records the
                 application is handed again (no commit covered them) must not count as
                 already processed by this run.
V3 confirm    -- the application's consumer position observed at ``t`` plays the role of
                 the high watermark in the tracker's confirmation rule (R11):
                 ``note_read_position(read_offset=frontier, high_watermark=position,
                 observed_at=t)``. A processed-gap is therefore confirmed only once its
                 grace has passed and the application has processed past everything it
                 had been handed a grace period after the gap opened; an application
                 that stalls or lags confirms nothing whose records it may still process.
V4 unknown    -- with no frontier yet (no mark, no commit, no position), nothing is
                 confirmed.
V5 changed    -- every mark and every event bumps the partition's version; a checkpoint
                 is due while the version differs from the one last written.

The adapter (:mod:`gapwatch.verifier.verifier`) supplies marks, positions, the time and
checkpoints; this module never awaits, logs, reads the clock or touches Kafka.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from gapwatch.core.config import TrackerConfig
from gapwatch.core.counters import TrackerCounters
from gapwatch.core.events import Event
from gapwatch.core.intake import Headers, observe_record
from gapwatch.core.model import Gap
from gapwatch.core.tracker import PartitionTracker
from gapwatch.errors import SnapshotError


class ProcessedRecord(Protocol):
    """What the verifier reads of a record: aiokafka's ``ConsumerRecord`` has it all."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def timestamp(self) -> int: ...

    @property
    def headers(self) -> Headers: ...


class VerifiedPartition:
    """One partition of the group, as far as this instance has seen it processed."""

    __slots__ = (
        "checkpointed_version",
        "frontier",
        "partition",
        "position",
        "restored_from",
        "topic",
        "tracker",
        "version",
    )

    def __init__(self, topic: str, partition: int, tracker: PartitionTracker) -> None:
        self.topic = topic
        self.partition = partition
        self.tracker = tracker
        self.frontier: int | None = None  # V2
        self.position: int | None = None  # the application's position, last observed
        self.version = 0  # V5
        self.checkpointed_version = 0
        # Where the state came from: "checkpoint", "fresh", or "damaged: <reason>".
        self.restored_from = "fresh"

    @property
    def counters(self) -> TrackerCounters:
        """The tracker's plain int counters."""
        return self.tracker.counters

    @property
    def needs_checkpoint(self) -> bool:
        """Whether anything changed since the last checkpoint was written (V5)."""
        return self.version != self.checkpointed_version

    @property
    def unprocessed(self) -> int:
        """Records handed to the application and not yet marked (position - frontier)."""
        if self.position is None or self.frontier is None:
            return 0
        return max(0, self.position - self.frontier)


class ProcessedLedger:
    """The group's partitions owned by this instance, each with its tracker (rules above)."""

    def __init__(self, tracker_config: TrackerConfig) -> None:
        self.tracker_config = tracker_config
        self._parts: dict[tuple[str, int], VerifiedPartition] = {}

    def __len__(self) -> int:
        return len(self._parts)

    def __iter__(self) -> Iterator[VerifiedPartition]:
        # A copy: safe while partitions are adopted or released (scrapes, rebalances).
        return iter(tuple(self._parts.values()))

    def get(self, topic: str, partition: int) -> VerifiedPartition | None:
        """The partition, if this instance holds it."""
        return self._parts.get((topic, partition))

    def adopt(
        self,
        topic: str,
        partition: int,
        *,
        snapshot: bytes | None,
        start_offset: int | None,
    ) -> VerifiedPartition:
        """Take a partition: from its checkpointed ``snapshot`` if any, else fresh.

        ``start_offset`` is where the application resumes (V2). A damaged snapshot starts
        the partition fresh (``restored_from`` says why): better a new baseline than a
        half-read state.
        """
        tracker: PartitionTracker | None = None
        origin = "fresh"
        if snapshot is not None:
            try:
                tracker = PartitionTracker.restore(
                    snapshot, topic=topic, partition=partition, config=self.tracker_config
                )
                origin = "checkpoint"
            except SnapshotError as exc:
                origin = f"damaged: {exc.reason}"
        if tracker is None:
            tracker = PartitionTracker(topic, partition, config=self.tracker_config)
        part = VerifiedPartition(topic, partition, tracker)
        part.frontier = start_offset
        part.restored_from = origin
        self._parts[(topic, partition)] = part
        return part

    def release(self, topic: str, partition: int) -> VerifiedPartition | None:
        """Stop holding a partition (after its last checkpoint)."""
        return self._parts.pop((topic, partition), None)

    def processed(
        self,
        part: VerifiedPartition,
        *,
        offset: int,
        timestamp_ms: int,
        headers: Headers,
        now: float,
    ) -> Sequence[Event]:
        """V1, V2: the application processed the record at ``offset``."""
        part.version += 1
        if part.frontier is None or offset >= part.frontier:
            part.frontier = offset + 1
        return observe_record(
            part.tracker, offset=offset, timestamp_ms=timestamp_ms, headers=headers, now=now
        )

    def consumed(self, part: VerifiedPartition, *, position: int, now: float) -> Sequence[Event]:
        """V3, V4: the application's consumer position was ``position`` at ``now``."""
        part.position = position
        if part.frontier is None:
            # V2: nothing marked and no commit: the application starts here.
            part.frontier = position
        events = part.tracker.note_read_position(
            read_offset=part.frontier, high_watermark=position, observed_at=now
        )
        if events:
            part.version += 1
        return events

    def checkpointed(self, part: VerifiedPartition, version: int) -> None:
        """V5: a checkpoint of ``part`` as it was at ``version`` has been written."""
        part.checkpointed_version = version

    def tick(self, now: float) -> list[Event]:
        """Time passes for every partition: confirmations and evictions that are due."""
        events: list[Event] = []
        for part in self:
            found = part.tracker.tick(now)
            if found:
                part.version += 1
                events.extend(found)
        return events

    def gaps(self) -> list[Gap]:
        """Every gap the trackers hold (open, confirmed, and recent closed ones)."""
        return [gap for part in self for gap in part.tracker.gaps()]
