"""The tracker's events: each one fact a consumer of the tracker may act on.

The tracker and its rule modules return these; sinks, the gap log, the HTTP API and the
verifier consume them. Events that change a gap carry the gap's new full record, so a sink
never has to ask the tracker for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeAlias

from gapwatch.core.model import Gap, StreamKey


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
class GapJoined:
    """Two adjacent open pieces of one gap, cut apart only because a producer report told
    one of them before the other (R12), are both ``producer_told`` now: they are one gap
    again. ``gap`` is the joined gap (the left piece's id, both pieces' sequences);
    ``absorbed`` is the right piece's last record, which no longer exists on its own."""

    gap: Gap
    absorbed: Gap


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
    | GapJoined
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
