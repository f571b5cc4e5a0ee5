"""Gap changes: the one public record of "this gap is now in this state", and its wire form.

The tracker's events say what happened inside a partition; a :class:`GapChange` says what
the rest of the world needs to know about it: which gap (its full new record) or which
skipped offset range, what kind of change, which consumer group (fleet) and which
instance owns it, and when. The gap log stores them, the fleet view is built from them,
``GET /events`` streams them and the webhook sink posts them. All pure: no I/O, no clock.

Wire form (gap log record value): UTF-8 JSON ``{"v": 1, "kind", "group", "instance",
"at", "gap": {every Gap field, raw}}`` or ``..."skipped": {...}}``. Raw fields (float
times, enum values) rather than ``Gap.to_json()``, so a decoded gap equals the original.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from gapwatch.alerting.strings import StringTable
from gapwatch.core.events import (
    Event,
    GapConfirmed,
    GapHealed,
    GapJoined,
    GapOpened,
    GapRecovered,
    GapShrunk,
    GapSplit,
    GapTold,
    GapUnknown,
    RecordsSkipped,
    RecordsTruncated,
)
from gapwatch.core.model import Gap, GapCause, GapState
from gapwatch.errors import GapwatchError

WIRE_VERSION: Final = 1
_GAP_FIELDS: Final = tuple(f.name for f in fields(Gap))
# Gap fields that many gaps repeat (the id is each gap's own).
_SHARED_GAP_FIELDS: Final = ("topic", "producer")


class ChangeKind(StrEnum):
    """What happened to the gap (or offset range) a change carries."""

    OPENED = "opened"
    SHRUNK = "shrunk"  # a late record filled one end of an open gap
    SPLIT = "split"  # two gaps from one: a late record, or a failed range's boundary (R12)
    JOINED = "joined"  # two open told pieces of one gap are one again (R12): the joined gap
    ABSORBED = "absorbed"  # the right piece of a join: it no longer exists on its own
    TOLD = "told"  # a later producer report: the application knew of every record (R12)
    HEALED = "healed"
    CONFIRMED = "confirmed"
    RECOVERED = "recovered"  # a record of a confirmed gap arrived later (see gap.recovered)
    TRUNCATED = "truncated"
    UNKNOWN = "unknown"  # open when retention deleted unread offsets: not called lost
    SKIPPED = "skipped"
    OWNED = "owned"  # an instance took over the partition; the gap's state is unchanged


_KIND_OF_STATE: Final = {
    GapState.OPEN: ChangeKind.OPENED,
    GapState.CONFIRMED: ChangeKind.CONFIRMED,
    GapState.HEALED: ChangeKind.HEALED,
    GapState.RECOVERED: ChangeKind.RECOVERED,
    GapState.TRUNCATED: ChangeKind.TRUNCATED,
    GapState.UNKNOWN: ChangeKind.UNKNOWN,
}


def iso_time(ts: float) -> str:
    """RFC 3339 UTC with milliseconds, as the API writes every time."""
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


class GapChangeDecodeError(GapwatchError):
    """A gap log record that this version cannot read."""


@dataclass(frozen=True, slots=True)
class GapChange:
    """One change of one gap (``gap``) or one skipped offset range (``skipped``)."""

    kind: ChangeKind
    group: str
    instance: str
    at: float
    gap: Gap | None = None
    skipped: RecordsSkipped | None = None

    @property
    def key(self) -> str:
        """The gap log key: the newest change of a key is all compaction keeps.

        Prefixed with the group so two monitor fleets watching the same topic (same gap
        ids) can share one gap log topic without overwriting each other.
        """
        if self.gap is not None:
            return f"{self.group}/{self.gap.id}"
        assert self.skipped is not None
        s = self.skipped
        return f"{self.group}/skipped/{s.topic}/{s.partition}/{s.first_offset}"

    @property
    def topic(self) -> str:
        """The watched topic the change is about."""
        return self.gap.topic if self.gap is not None else self.skipped_range().topic

    @property
    def partition(self) -> int:
        """The watched partition the change is about."""
        return self.gap.partition if self.gap is not None else self.skipped_range().partition

    @property
    def state(self) -> str:
        """The gap's state after the change, or ``"skipped"``."""
        return self.gap.state.value if self.gap is not None else "skipped"

    def skipped_range(self) -> RecordsSkipped:
        """The skipped range of a change that is not about a gap (asserts there is one)."""
        assert self.skipped is not None
        return self.skipped

    def to_json(self) -> dict[str, Any]:
        """The change as the HTTP API and the webhook show it (gap as in ``/gaps``)."""
        body: dict[str, Any] = {
            "kind": self.kind.value,
            "group": self.group,
            "instance": self.instance,
            "at": iso_time(self.at),
            "at_ts": self.at,
        }
        if self.gap is not None:
            body["gap"] = {**self.gap.to_json(), "instance": self.instance}
        else:
            body["skipped"] = skipped_json(self.skipped_range())
        return body


def skipped_json(skipped: RecordsSkipped) -> dict[str, Any]:
    """A skipped range as ``/skipped`` shows it."""
    return {
        "topic": skipped.topic,
        "partition": skipped.partition,
        "first_offset": skipped.first_offset,
        "last_offset": skipped.last_offset,
        "count": skipped.count,
        "at": skipped.at,
    }


def changes_from_events(
    events: Sequence[Event], *, group: str, instance: str, now: float
) -> list[GapChange]:
    """The gap changes among tracker ``events`` (others, e.g. duplicates, carry no gap)."""
    changes: list[GapChange] = []

    def add(kind: ChangeKind, gap: Gap) -> None:
        changes.append(GapChange(kind, group, instance, now, gap=gap))

    for event in events:
        if isinstance(event, GapOpened):
            add(ChangeKind.OPENED, event.gap)
        elif isinstance(event, GapShrunk):
            add(ChangeKind.SHRUNK, event.gap)
        elif isinstance(event, GapSplit):
            add(ChangeKind.SPLIT, event.left)
            add(ChangeKind.SPLIT, event.right)
        elif isinstance(event, GapJoined):
            add(ChangeKind.ABSORBED, event.absorbed)
            add(ChangeKind.JOINED, event.gap)
        elif isinstance(event, GapTold):
            add(ChangeKind.TOLD, event.gap)
        elif isinstance(event, GapHealed):
            add(ChangeKind.HEALED, event.gap)
        elif isinstance(event, GapConfirmed):
            add(ChangeKind.CONFIRMED, event.gap)
        elif isinstance(event, GapRecovered):
            add(ChangeKind.RECOVERED, event.gap)
        elif isinstance(event, GapUnknown):
            add(ChangeKind.UNKNOWN, event.gap)
        elif isinstance(event, RecordsTruncated):
            for gap in event.gaps:
                add(ChangeKind.TRUNCATED, gap)
        elif isinstance(event, RecordsSkipped):
            changes.append(GapChange(ChangeKind.SKIPPED, group, instance, now, skipped=event))
    return changes


def current_state_changes(
    gaps: Iterable[Gap], *, group: str, instance: str, now: float, kind: ChangeKind | None = None
) -> list[GapChange]:
    """Changes that restate ``gaps`` as they are now (``kind`` by state unless given)."""
    return [
        GapChange(kind or _KIND_OF_STATE[gap.state], group, instance, now, gap=gap) for gap in gaps
    ]


# --- wire form ------------------------------------------------------------------------------


def encode_change(change: GapChange) -> bytes:
    """The gap log record value of ``change``."""
    body: dict[str, Any] = {
        "v": WIRE_VERSION,
        "kind": change.kind.value,
        "group": change.group,
        "instance": change.instance,
        "at": change.at,
    }
    if change.gap is not None:
        body["gap"] = {name: getattr(change.gap, name) for name in _GAP_FIELDS}
    else:
        s = change.skipped_range()
        body["skipped"] = [s.topic, s.partition, s.first_offset, s.last_offset, s.count, s.at]
    return json.dumps(body, separators=(",", ":")).encode()


def _as_is(text: str) -> str:
    return text


def decode_change(raw: bytes, *, strings: StringTable | None = None) -> GapChange:
    """The change in a gap log record value; :class:`GapChangeDecodeError` if unreadable.

    With ``strings``, the names every change repeats (group, instance, topic, producer id)
    are the table's shared copies, so changes kept for long do not each hold their own.
    """
    share = strings.share if strings is not None else _as_is
    try:
        body = json.loads(raw)
        if body.get("v") != WIRE_VERSION:
            raise GapChangeDecodeError(f"unknown gap log version {body.get('v')!r}")
        kind = ChangeKind(body["kind"])
        group, instance = share(str(body["group"])), share(str(body["instance"]))
        at = float(body["at"])
        if "gap" in body:
            values = dict(body["gap"])
            values["state"] = GapState(values["state"])
            values["cause"] = GapCause(values["cause"])
            for name in _SHARED_GAP_FIELDS:
                if isinstance(values.get(name), str):
                    values[name] = share(values[name])
            return GapChange(kind, group, instance, at, gap=Gap(**values))
        topic, partition, first, last, count, skipped_at = body["skipped"]
        skipped = RecordsSkipped(
            share(str(topic)), int(partition), int(first), int(last), int(count), float(skipped_at)
        )
        return GapChange(kind, group, instance, at, skipped=skipped)
    except GapChangeDecodeError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise GapChangeDecodeError(f"unreadable gap log record: {exc}") from None
