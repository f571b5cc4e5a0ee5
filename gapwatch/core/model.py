"""The vocabulary of the tracker: gap records, their states, stream keys and reports.

Everything here is a small immutable value. The tracker (:mod:`gapwatch.core.tracker`)
produces these; adapters (monitor, HTTP API, alert sinks, gap log) consume them and
never need to look inside the tracker's mutable state. The events that carry
these values live in :mod:`gapwatch.core.events`.

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
from typing import Any, Final


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


@dataclass(frozen=True, slots=True)
class WriteSettings:
    """How a producer says it writes, from its reports: its ``acks`` setting (``"0"``,
    ``"1"`` or ``"all"``) and whether idempotence is on; ``None`` where the report does not
    say. Facts for the durability audit (:mod:`gapwatch.core.durability`); the tracker
    never reads them.
    """

    acks: str | None = None
    idempotence: bool | None = None


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
