"""A tiny driver for PartitionTracker tests: a partition log with offsets and a clock."""

from __future__ import annotations

from collections.abc import Sequence

from gapwatch.core.config import TrackerConfig
from gapwatch.core.events import Event
from gapwatch.core.tracker import PartitionTracker
from gapwatch.core.wire import Stamp

TOPIC = "orders"
PARTITION = 3


class Feed:
    """Appends records to one partition and feeds them to a tracker as they are read."""

    def __init__(self, *, grace: float = 10.0, **config: int | float) -> None:
        self.tracker = PartitionTracker(
            TOPIC, PARTITION, config=TrackerConfig(grace_period=grace, **config)
        )
        self.offset = 0
        self.now = 1_000.0
        self.events: list[Event] = []

    def record(
        self, producer: str, epoch: int, seq: int, *, ts: int | None = None
    ) -> Sequence[Event]:
        """Read the next record (offset assigned in order). ``ts`` defaults to ``seq``."""
        events = self.tracker.observe(
            self.offset, seq if ts is None else ts, Stamp(producer, epoch, seq), self.now
        )
        self.offset += 1
        self.events.extend(events)
        return events

    def run(self, producer: str, epoch: int, seqs: Sequence[int]) -> None:
        """Read a record for each sequence in ``seqs``."""
        for seq in seqs:
            self.record(producer, epoch, seq)

    def settle(self, advance: float | None = None) -> Sequence[Event]:
        """Let the grace pass and report that the consumer caught up with the log end."""
        self.now += self.tracker.config.grace_period + 1 if advance is None else advance
        events = self.tracker.note_read_position(
            read_offset=self.offset, high_watermark=self.offset, observed_at=self.now
        )
        self.events.extend(events)
        return events

    def of(self, kind: type) -> list[Event]:
        """Every event of one type seen so far."""
        return [e for e in self.events if isinstance(e, kind)]
