"""Client-side fault injection for the load generator, and the exact truth of what it did.

Pure: no I/O, no clock; randomness comes from a seeded ``random.Random`` so a run can be
repeated. The load generator asks :class:`FaultDecider` what to do with each stamped
record, keeps reordered records in :class:`HoldBack`, and tells :class:`InjectionLedger`
what it really sent, so the truth it prints is what happened, not what was planned:

1. **drop**: the record is stamped (its sequence is used up) and never sent.
2. **duplicate**: the identical stamped record (same stamp, same CreateTime) is sent
   twice in a row, as a client's retry of a batch would.
3. **reorder**: the stamped record is held back and sent after ``reorder_depth`` later
   records of its partition were sent (or at the end), with the CreateTime it was made
   with, as a retried batch would be. It counts as reordered only if a later sequence of
   its stream really was sent before it.
4. **crash**: the producer closes without a final report; records it still held back
   are never sent and count as dropped.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict, deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from gapwatch.core.model import StreamKey
from gapwatch.producer.config import ProducerConfigError

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class Fault(StrEnum):
    """What to do with one record."""

    NONE = "none"
    DROP = "drop"
    DUPLICATE = "duplicate"
    REORDER = "reorder"


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultPlan:
    """Per-record probabilities of each fault (their sum at most 1) and the seed."""

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_depth: int = 3
    seed: int = 0

    def validate(self) -> FaultPlan:
        """Return ``self`` if valid, else raise :class:`ProducerConfigError` naming the field."""
        for name in ("drop", "duplicate", "reorder"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ProducerConfigError(name, "must be a probability between 0 and 1")
        if self.drop + self.duplicate + self.reorder > 1.0:
            raise ProducerConfigError("drop", "drop + duplicate + reorder must be at most 1")
        if self.reorder_depth < 1:
            raise ProducerConfigError("reorder_depth", "must be at least 1")
        return self


class FaultDecider:
    """Draws one :class:`Fault` per record from a plan."""

    __slots__ = ("_drop", "_duplicate", "_reorder", "_rng")

    def __init__(self, plan: FaultPlan, rng: random.Random | None = None) -> None:
        plan.validate()
        self._rng = random.Random(plan.seed) if rng is None else rng
        self._drop = plan.drop
        self._duplicate = plan.drop + plan.duplicate
        self._reorder = self._duplicate + plan.reorder

    def decide(self) -> Fault:
        """The fault for the next record."""
        if self._reorder == 0.0:
            return Fault.NONE
        draw = self._rng.random()
        if draw < self._drop:
            return Fault.DROP
        if draw < self._duplicate:
            return Fault.DUPLICATE
        if draw < self._reorder:
            return Fault.REORDER
        return Fault.NONE


class HoldBack(Generic[K, T]):
    """Records held back per partition until ``depth`` later records of it were sent."""

    def __init__(self, depth: int) -> None:
        self._depth = depth
        self._sent: defaultdict[K, int] = defaultdict(int)
        self._held: defaultdict[K, deque[tuple[int, T]]] = defaultdict(deque)

    def hold(self, lane: K, item: T) -> None:
        """Keep ``item`` until ``depth`` more records of ``lane`` were sent."""
        self._held[lane].append((self._sent[lane] + self._depth, item))

    def sent(self, lane: K) -> list[T]:
        """Note one record of ``lane`` sent; returns the held items now due, oldest first."""
        count = self._sent[lane] = self._sent[lane] + 1
        held = self._held.get(lane)
        due: list[T] = []
        while held and held[0][0] <= count:
            due.append(held.popleft()[1])
        return due

    def lanes(self) -> list[K]:
        """The lanes that still hold items."""
        return [lane for lane, held in self._held.items() if held]

    def drain(self, lane: K | None = None) -> list[T]:
        """Every item still held (of one lane, or of all), oldest first per lane."""
        lanes = list(self._held) if lane is None else [lane]
        items: list[T] = []
        for key in lanes:
            held = self._held.pop(key, deque())
            items.extend(item for _, item in held)
        return items


@dataclass(slots=True)
class StreamTruth:
    """What really happened to one stream (topic, partition, producer, epoch)."""

    key: StreamKey
    last_seq: int = -1
    sent: int = 0
    dropped: list[int] = field(default_factory=list)
    duplicated: list[int] = field(default_factory=list)
    reordered: list[int] = field(default_factory=list)
    failed: list[tuple[int, int]] = field(default_factory=list)
    crashed: bool = False
    max_sent: int = -1

    def to_json(self) -> dict[str, Any]:
        """The stream's truth as a JSON-ready dict (sorted sequence lists)."""
        return {
            "topic": self.key.topic,
            "partition": self.key.partition,
            "producer": self.key.producer,
            "epoch": self.key.epoch,
            "last_seq": self.last_seq if self.last_seq >= 0 else None,
            "sent": self.sent,
            "dropped": sorted(self.dropped),
            "duplicated": sorted(self.duplicated),
            "reordered": sorted(self.reordered),
            "failed": [list(r) for r in self.failed],
            "crashed": self.crashed,
        }


class InjectionLedger:
    """Accumulates the exact truth of a load-generator run."""

    def __init__(self) -> None:
        self._streams: dict[StreamKey, StreamTruth] = {}

    def stream(self, key: StreamKey) -> StreamTruth:
        """The truth of ``key``, created on first use."""
        truth = self._streams.get(key)
        if truth is None:
            truth = self._streams[key] = StreamTruth(key)
        return truth

    def stamped(self, key: StreamKey, seq: int) -> None:
        """``seq`` was assigned."""
        truth = self.stream(key)
        truth.last_seq = max(truth.last_seq, seq)

    def dropped(self, key: StreamKey, seq: int) -> None:
        """``seq`` was stamped and will never be sent."""
        self.stream(key).dropped.append(seq)

    def sent(self, key: StreamKey, seq: int, *, copies: int = 1) -> None:
        """``seq`` was handed to the client ``copies`` times (2 for a duplicate)."""
        truth = self.stream(key)
        truth.sent += copies
        if copies > 1:
            truth.duplicated.append(seq)
        if seq < truth.max_sent:
            # A later sequence of this stream went out before it.
            truth.reordered.append(seq)
        truth.max_sent = max(truth.max_sent, seq)

    def crashed(self, producer: str, epoch: int) -> None:
        """The producer crashed (no final report)."""
        for key, truth in self._streams.items():
            if key.producer == producer and key.epoch == epoch:
                truth.crashed = True

    def failed(self, key: StreamKey, ranges: tuple[tuple[int, int], ...]) -> None:
        """The producer's bookkeeping says these sends failed (the application was told)."""
        self.stream(key).failed = list(ranges)

    def streams(self) -> list[StreamTruth]:
        """Every stream, sorted by topic, partition, producer and epoch."""
        return [self._streams[k] for k in sorted(self._streams, key=_sort_key)]

    def to_json(self) -> dict[str, Any]:
        """The whole truth: per-stream details and totals."""
        streams = self.streams()
        return {
            "version": 1,
            "streams": [s.to_json() for s in streams],
            "totals": {
                "stamped": sum(s.last_seq + 1 for s in streams),
                "sent": sum(s.sent for s in streams),
                "dropped": sum(len(s.dropped) for s in streams),
                "duplicated": sum(len(s.duplicated) for s in streams),
                "reordered": sum(len(s.reordered) for s in streams),
                "failed": sum(b - a + 1 for s in streams for a, b in s.failed),
                "crashed_producers": len(
                    {(s.key.producer, s.key.epoch) for s in streams if s.crashed}
                ),
            },
        }


def _sort_key(key: StreamKey) -> tuple[str, int, str, int]:
    return (key.topic, key.partition, key.producer, key.epoch)
