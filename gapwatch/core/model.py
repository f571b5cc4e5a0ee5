"""The vocabulary of the tracker: gap records, their states, stream keys, reports and events.

Everything here is a small immutable value. The tracker (:mod:`gapwatch.core.tracker`)
produces these; adapters (monitor, HTTP API, alert sinks, gap log) consume them and
never need to look inside the tracker's mutable state.

Times (``opened_at`` and friends, ``at``) are float seconds since the Unix epoch exactly
as the caller passed them in as ``now``; record timestamps (``*_timestamp_ms``) are the
Kafka record timestamps in integer milliseconds.

Gap states (:class:`GapState`)::

    open ──(every missing record arrived)──────────────▶ healed      (not a loss)
     │
     ├──(confirmation rule held)──▶ confirmed ──(all missing records arrived later)──▶ recovered
     └──(confirmation rule held, but retention deleted unread offsets meanwhile)──▶ unknown
    (log truncation) ───────────────▶ truncated

* ``open``: sequences are missing but may still arrive (reordering by retries).
* ``confirmed``: the confirmation rule held while at least one sequence was missing; the
  gap's ``count`` is frozen at that moment and is the loss. Records of it that arrive later
  only raise ``recovered``.
* ``healed``: every missing sequence arrived before confirmation. Terminal, never a loss.
* ``recovered``: a confirmed gap whose every missing record eventually arrived. Terminal;
  the loss stays counted (metrics are counters), but alerts may resolve at once.
* ``truncated``: records the monitor had already read were removed from the log by a
  truncation (an out-of-sync replica became leader). ``count`` records are gone.
* ``unknown``: the gap was still open when retention deleted offsets before the monitor
  read them, so its missing records may have been among them (written, then deleted
  unread). Terminal and not a loss: nobody can tell any more.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, TypeAlias


class GapState(StrEnum):
    """Where a gap is in its life; see the module docstring for the transitions."""

    OPEN = "open"
    CONFIRMED = "confirmed"
    HEALED = "healed"
    RECOVERED = "recovered"
    TRUNCATED = "truncated"
    UNKNOWN = "unknown"

    @property
    def is_loss(self) -> bool:
        """True for states that count as lost records (confirmed, recovered, truncated)."""
        return self in (GapState.CONFIRMED, GapState.RECOVERED, GapState.TRUNCATED)


class GapCause(StrEnum):
    """Why the tracker believes these sequences are missing."""

    SEQUENCE = "sequence"  # a record jumped ahead of the next expected sequence
    HEAD = "head"  # a new epoch of a witnessed producer did not start at 0
    TAIL = "tail"  # the producer reported acknowledged records that never arrived
    PRODUCER = "producer"  # the producer reported these sends as failed
    TRUNCATION = "truncation"  # already-read records were removed from the log


@dataclass(frozen=True, slots=True)
class StreamKey:
    """One producer incarnation writing to one partition: the unit that has sequences."""

    topic: str
    partition: int
    producer: str
    epoch: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}/{self.producer}@{self.epoch}"


_ID_VERSION: Final = b"gw1"


def gap_id(key: StreamKey, first_seq: int, *, generation: int = 0, cause: GapCause) -> str:
    """The stable id of the gap of ``key`` whose first missing sequence is ``first_seq``.

    Derived only from the stream, its reset generation, the first missing sequence and
    whether it is a truncation (the only way the same sequences can go missing twice), so
    a restarted or different monitor instance computes the same id for the same gap. The
    result is 20 lowercase hex characters: URL-safe and short enough to say on a call.
    """
    kind = b"t" if cause is GapCause.TRUNCATION else b"g"
    material = b"\x00".join(
        (
            _ID_VERSION,
            key.topic.encode(),
            str(key.partition).encode(),
            key.producer.encode(),
            str(key.epoch).encode(),
            str(generation).encode(),
            str(first_seq).encode(),
            kind,
        )
    )
    return hashlib.blake2b(material, digest_size=10).hexdigest()


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Gap:
    """One run of missing sequences of one stream, and what the tracker knows about it.

    ``first_seq``..``last_seq`` (inclusive) is the run; ``count`` is how many of those are
    missing (for an open gap, always ``last_seq - first_seq + 1``, since a late record in
    the middle splits the gap; for a confirmed gap, frozen at confirmation). The bounding
    records are the stream's records just before and just after the run, so an operator can
    find the place in the log (``None`` where unknown, e.g. for a tail gap).
    """

    id: str
    topic: str
    partition: int
    producer: str
    epoch: int
    first_seq: int
    last_seq: int
    count: int
    state: GapState
    cause: GapCause
    opened_at: float
    updated_at: float
    confirmed_at: float | None = None
    healed_at: float | None = None
    offset_before: int | None = None
    offset_after: int | None = None
    timestamp_before_ms: int | None = None
    timestamp_after_ms: int | None = None
    producer_told: bool = False
    recovered: int = 0
    generation: int = 0

    @property
    def key(self) -> StreamKey:
        """The stream this gap belongs to."""
        return StreamKey(self.topic, self.partition, self.producer, self.epoch)

    @property
    def is_loss(self) -> bool:
        """Whether this gap counts as lost records."""
        return self.state.is_loss

    def to_json(self) -> dict[str, Any]:
        """The gap as a JSON-ready dict: integers for numbers, RFC 3339 UTC for times.

        Times also appear as float seconds (``*_ts``) for machine consumers that filter
        by time.
        """
        return {
            "id": self.id,
            "topic": self.topic,
            "partition": self.partition,
            "producer": self.producer,
            "epoch": self.epoch,
            "generation": self.generation,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "count": self.count,
            "state": self.state.value,
            "cause": self.cause.value,
            "opened_at": _iso(self.opened_at),
            "updated_at": _iso(self.updated_at),
            "confirmed_at": _iso(self.confirmed_at),
            "healed_at": _iso(self.healed_at),
            "opened_at_ts": self.opened_at,
            "updated_at_ts": self.updated_at,
            "offset_before": self.offset_before,
            "offset_after": self.offset_after,
            "timestamp_before_ms": self.timestamp_before_ms,
            "timestamp_after_ms": self.timestamp_after_ms,
            "producer_told": self.producer_told,
            "recovered": self.recovered,
        }


@dataclass(frozen=True, slots=True)
class ProducerReport:
    """What a producer says about one of its streams (see ``docs/tracker.md``).

    ``highest_assigned`` is the highest sequence it stamped (``None``: none yet);
    ``highest_acked`` the highest sequence it has an acknowledgement for (``None``: nothing
    acknowledged, e.g. with ``acks=0``); ``failed`` inclusive ``(first, last)`` ranges whose
    sends failed; ``final`` is True for the last report of a closing producer.
    """

    producer: str
    epoch: int
    topic: str
    partition: int
    highest_assigned: int | None
    highest_acked: int | None
    failed: tuple[tuple[int, int], ...] = ()
    final: bool = False

    @property
    def key(self) -> StreamKey:
        """The stream this report is about."""
        return StreamKey(self.topic, self.partition, self.producer, self.epoch)


# --- events -------------------------------------------------------------------------------
# Each event is one fact a consumer of the tracker may act on. Events that change a gap
# carry the gap's new full record, so a sink never has to ask the tracker for it.


@dataclass(frozen=True, slots=True)
class GapOpened:
    """Sequences are missing (state ``open``); they may still arrive."""

    gap: Gap


@dataclass(frozen=True, slots=True)
class GapShrunk:
    """A late record (``seq``) filled the first or last sequence of an open gap."""

    gap: Gap
    seq: int


@dataclass(frozen=True, slots=True)
class GapTold:
    """A producer report arriving after ``gap`` opened covers every one of its sequences:
    the application was told of all of it (R12). Only ``producer_told`` (and
    ``updated_at``) changed; a report covering part of a gap splits it instead."""

    gap: Gap


@dataclass(frozen=True, slots=True)
class GapSplit:
    """A gap became two adjacent ones: ``left`` keeps the original id, ``right`` has the id
    of its own first sequence.

    R6: a late record (``seq``) filled the middle of an open gap. R12 (``seq`` is
    ``None``): a producer report's failed range covers only part of an open or confirmed
    gap, which is cut at the range's boundary so that each piece is entirely
    ``producer_told`` or entirely silent (a cut into more pieces is one event per
    boundary, each piece's record final). The pieces' counts add up to the original's.
    """

    left: Gap
    right: Gap
    seq: int | None


@dataclass(frozen=True, slots=True)
class GapHealed:
    """Every missing sequence of an open gap arrived: not a loss."""

    gap: Gap


@dataclass(frozen=True, slots=True)
class GapConfirmed:
    """The confirmation rule held: ``gap.count`` records are lost."""

    gap: Gap


@dataclass(frozen=True, slots=True)
class GapUnknown:
    """The confirmation rule held for a gap that was open when retention deleted unread
    offsets (rule R16): its records may have been among them, so it is not called lost."""

    gap: Gap


@dataclass(frozen=True, slots=True)
class GapRecovered:
    """A record (``seq``) of a confirmed or truncated gap arrived after all."""

    gap: Gap
    seq: int


@dataclass(frozen=True, slots=True)
class DuplicateRecords:
    """``count`` records of an already-seen sequence range were read again."""

    key: StreamKey
    first_seq: int
    last_seq: int
    count: int
    offset: int


@dataclass(frozen=True, slots=True)
class SequenceReset:
    """A producer restarted the same epoch at sequence 0 (a new ``generation``)."""

    key: StreamKey
    previous_high_seq: int
    generation: int
    offset: int
    at: float


@dataclass(frozen=True, slots=True)
class EpochStarted:
    """A producer already tracked on this partition started a newer epoch."""

    key: StreamKey
    previous_epoch: int
    first_seq: int
    offset: int
    at: float


@dataclass(frozen=True, slots=True)
class ZombieEpoch:
    """A record of an older epoch arrived after a newer epoch began (zombie or id clash)."""

    key: StreamKey
    current_epoch: int
    seq: int
    offset: int
    at: float


@dataclass(frozen=True, slots=True)
class StreamEvicted:
    """The tracker forgot a stream: ``reason`` is ``"idle"`` or ``"cap"``."""

    key: StreamKey
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class RecordsTruncated:
    """The log was truncated below offsets already read, or diverged from what was read.

    ``gaps`` are the new ``truncated`` gaps (exact, from the ring); ``unaccounted`` is how
    many truncated offsets fell outside the ring so their sequences are unknown.
    ``beyond_ring``: the log differs from the oldest record the ring holds, so the
    divergence may reach further back than the ring can tell (depth unknown).
    """

    topic: str
    partition: int
    new_end_offset: int
    previous_end_offset: int
    gaps: tuple[Gap, ...]
    count: int
    unaccounted: int
    at: float
    beyond_ring: bool = False


@dataclass(frozen=True, slots=True)
class UnknownFate:
    """A closing producer stamped these sequences but got no acknowledgement for them,
    and they never arrived: they may or may not have been written."""

    key: StreamKey
    first_seq: int
    last_seq: int
    count: int
    at: float


@dataclass(frozen=True, slots=True)
class RecordsSkipped:
    """Offsets deleted by retention before the monitor read them (emitted by the monitor).

    Not a loss: nobody can tell what they held. ``first_offset``..``last_offset`` inclusive.
    """

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    count: int
    at: float


Event: TypeAlias = (
    GapOpened
    | GapShrunk
    | GapSplit
    | GapTold
    | GapHealed
    | GapConfirmed
    | GapRecovered
    | GapUnknown
    | DuplicateRecords
    | SequenceReset
    | EpochStarted
    | ZombieEpoch
    | StreamEvicted
    | RecordsTruncated
    | UnknownFate
    | RecordsSkipped
)

NO_EVENTS: Final[tuple[Event, ...]] = ()
"""The shared empty result of the hot path: returning it allocates nothing."""


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """A read-only view of one tracked stream, for ``GET /streams``."""

    key: StreamKey
    generation: int
    base_seq: int
    high_seq: int
    last_offset: int
    last_timestamp_ms: int
    last_seen: float
    missing: int
    open_gaps: tuple[str, ...] = field(default=())
