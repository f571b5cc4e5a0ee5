"""A queryable memory of gaps: latest record per gap id, plus skipped ranges.

The monitor keeps its own gaps in one; the fleet view (:mod:`gapwatch.alerting.fleet`)
keeps every instance's in one per consumer group.

It is an :class:`~gapwatch.gaps.fanout.EventSubscriber`: every event that carries a
gap replaces the stored record of that id, so the store always holds each gap's newest
state. Open gaps are kept as long as their partition is owned; closed ones (every state
but ``open``) for ``closed_retention`` seconds and at most ``closed_limit`` of them,
oldest update evicted first. Queries return newest first (by ``opened_at``, then id) with
a key-set cursor, which stays correct while new gaps arrive between pages.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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
from gapwatch.core.model import Gap, GapState
from gapwatch.errors import GapwatchError


class BadCursorError(GapwatchError):
    """A ``/gaps`` cursor that this store did not produce."""


@dataclass(frozen=True, slots=True)
class GapQuery:
    """Filters of ``GET /gaps``; ``None`` means "any"."""

    topic: str | None = None
    partition: int | None = None
    producer: str | None = None
    states: frozenset[GapState] | None = None
    since: float | None = None  # opened or changed at or after (seconds since the epoch)


@dataclass(frozen=True, slots=True)
class GapPage:
    """One page of results, newest first; ``next_cursor`` is ``None`` on the last page."""

    gaps: tuple[Gap, ...]
    next_cursor: str | None


def _sort_key(gap: Gap) -> tuple[float, str]:
    return (-gap.opened_at, gap.id)


def encode_cursor(gap: Gap) -> str:
    """An opaque cursor positioned just after ``gap`` in newest-first order."""
    raw = json.dumps([gap.opened_at, gap.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The sort key a cursor points after; raises :class:`BadCursorError` if damaged."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        opened_at, gap_id = json.loads(base64.urlsafe_b64decode(padded))
        return (-float(opened_at), str(gap_id))
    except (ValueError, TypeError, binascii.Error):
        raise BadCursorError("cursor is not one this monitor issued") from None


class GapStore:
    """Latest state of every known gap, bounded for closed ones."""

    name = "gap-store"

    def __init__(self, *, closed_retention: float, closed_limit: int) -> None:
        self._closed_retention = closed_retention
        self._closed_limit = closed_limit
        self._gaps: dict[str, Gap] = {}
        self._closed_order: dict[str, float] = {}  # id -> updated_at, insertion ~ time order
        self._sorted: list[Gap] | None = None
        self.skipped: list[RecordsSkipped] = []
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._gaps)

    # --- writing ----------------------------------------------------------------------

    def handle(self, events: Sequence[Event], now: float) -> None:
        """Apply a batch of tracker events (the :class:`EventSubscriber` entry point)."""
        for event in events:
            if isinstance(
                event,
                GapOpened
                | GapShrunk
                | GapTold
                | GapHealed
                | GapConfirmed
                | GapRecovered
                | GapUnknown,
            ):
                self.put(event.gap)
            elif isinstance(event, GapSplit):
                self.put(event.left)
                self.put(event.right)
            elif isinstance(event, GapJoined):
                self.remove(event.absorbed.id)
                self.put(event.gap)
            elif isinstance(event, RecordsTruncated):
                for gap in event.gaps:
                    self.put(gap)
            elif isinstance(event, RecordsSkipped):
                self.skipped.append(event)
        self.expire(now)

    def put(self, gap: Gap) -> None:
        """Store ``gap`` as the newest state of its id."""
        previous = self._gaps.get(gap.id)
        self._gaps[gap.id] = gap
        if previous is not None and previous.opened_at == gap.opened_at and self._sorted:
            # Same place in the order: swap the new record in without re-sorting.
            self._sorted[_bisect_after(self._sorted, _sort_key(previous)) - 1] = gap
        else:
            self._sorted = None
        self._closed_order.pop(gap.id, None)
        if gap.state is not GapState.OPEN:
            self._closed_order[gap.id] = gap.updated_at

    def load(self, gaps: Iterable[Gap]) -> None:
        """Store gaps known from elsewhere (a restored checkpoint's open gaps)."""
        for gap in gaps:
            self.put(gap)

    def remove(self, gap_id: str) -> bool:
        """Forget ``gap_id`` (the fleet view drops stale open gaps); whether it was known."""
        if self._gaps.pop(gap_id, None) is None:
            return False
        self._closed_order.pop(gap_id, None)
        self._sorted = None
        return True

    def forget_open(self, topic: str, partition: int) -> int:
        """Drop the open gaps of a partition this instance no longer owns; returns how many.

        Their new owner restores them from the checkpoint; keeping them here would show
        them open forever. Closed ones stay as history until they expire.
        """
        doomed = [
            gap_id
            for gap_id, gap in self._gaps.items()
            if gap.state is GapState.OPEN and gap.topic == topic and gap.partition == partition
        ]
        for gap_id in doomed:
            del self._gaps[gap_id]
        if doomed:
            self._sorted = None
        return len(doomed)

    def expire(self, now: float) -> None:
        """Evict closed gaps older than the retention or beyond the count limit."""
        horizon = now - self._closed_retention
        removed = False
        # Updates re-insert at the end, so the dict is (nearly) in update order and the
        # loop stops at the first gap that is young enough and within the limit.
        while self._closed_order:
            gap_id, updated_at = next(iter(self._closed_order.items()))
            if updated_at >= horizon and len(self._closed_order) <= self._closed_limit:
                break
            del self._closed_order[gap_id]
            del self._gaps[gap_id]
            self.evicted += 1
            removed = True
        if removed:
            self._sorted = None
        excess = len(self.skipped) - self._closed_limit
        if excess > 0:
            del self.skipped[:excess]
        while self.skipped and self.skipped[0].at < horizon:
            self.skipped.pop(0)

    # --- reading ----------------------------------------------------------------------

    def get(self, gap_id: str) -> Gap | None:
        """The newest record of ``gap_id``, or ``None``."""
        return self._gaps.get(gap_id)

    def values(self) -> Iterable[Gap]:
        """Every stored gap, in no particular order (a view: do not modify while iterating)."""
        return self._gaps.values()

    def open_count(self) -> int:
        """How many gaps are open right now."""
        return len(self._gaps) - len(self._closed_order)

    def query(self, query: GapQuery, *, limit: int, cursor: str | None = None) -> GapPage:
        """Up to ``limit`` gaps matching ``query``, newest first, after ``cursor``."""
        ordered = self._ordered()
        start = 0
        if cursor is not None:
            start = _bisect_after(ordered, decode_cursor(cursor))
        found: list[Gap] = []
        more = False
        for gap in _matching(ordered[start:], query):
            if len(found) == limit:
                more = True
                break
            found.append(gap)
        next_cursor = encode_cursor(found[-1]) if more and found else None
        return GapPage(tuple(found), next_cursor)

    def _ordered(self) -> list[Gap]:
        if self._sorted is None:
            self._sorted = sorted(self._gaps.values(), key=_sort_key)
        return self._sorted


def _bisect_after(ordered: list[Gap], key: tuple[float, str]) -> int:
    lo, hi = 0, len(ordered)
    while lo < hi:
        mid = (lo + hi) // 2
        if _sort_key(ordered[mid]) <= key:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _matching(gaps: Iterable[Gap], query: GapQuery) -> Iterable[Gap]:
    for gap in gaps:
        if query.topic is not None and gap.topic != query.topic:
            continue
        if query.partition is not None and gap.partition != query.partition:
            continue
        if query.producer is not None and gap.producer != query.producer:
            continue
        if query.states is not None and gap.state not in query.states:
            continue
        if query.since is not None and gap.updated_at < query.since:
            continue
        yield gap
