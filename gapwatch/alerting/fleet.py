"""The fleet view: the newest state of every gap of every instance of one consumer group.

Fed with :class:`~gapwatch.alerting.changes.GapChange` records: this instance's own
changes as they happen and every instance's (its own included, again) as they are read
back from the gap log. Rules, in order:

1. Changes of another group are ignored (several fleets may share one gap log topic).
2. A gap change replaces the stored record of its id, and its ``instance`` becomes the
   gap's owner, unless the stored record was updated later (``updated_at``): a change read
   back from the log after a newer local one must not roll the gap back. A change whose
   gap equals the stored record keeps the stored object (only its owner may change): the
   gap log brings back every change of this instance, and a second, decoded copy of each
   kept gap would double what the view costs.
3. Skipped ranges are kept once per (topic, partition, first offset).
4. Retention: closed gaps (every state but open) and skipped ranges for
   ``retention`` seconds, at most ``limit`` of each, oldest update evicted first; open
   gaps not updated for ``retention`` seconds are dropped as stale (their owner went
   away and nobody took them over).

Pure: no I/O; ``now`` is passed in.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from gapwatch.alerting.changes import ChangeKind, GapChange, changes_from_events
from gapwatch.core.events import Event, RecordsSkipped
from gapwatch.core.model import Gap, GapState
from gapwatch.gaps.store import GapPage, GapQuery, GapStore


class FleetStore:
    """Gaps of the whole fleet with their owners, bounded by retention and count."""

    name = "fleet-view"

    def __init__(self, *, group: str, retention: float, limit: int) -> None:
        self._group = group
        self._retention = retention
        self._limit = limit
        self.gaps = GapStore(closed_retention=retention, closed_limit=limit)
        self.owners: dict[str, str] = {}
        self._skipped: OrderedDict[tuple[str, int, int], tuple[RecordsSkipped, str]] = OrderedDict()
        self.applied = 0
        self.stale = 0

    def __len__(self) -> int:
        return len(self.gaps)

    def apply(self, change: GapChange) -> bool:
        """Take one change (rules 1-3); returns whether it changed the view."""
        if change.group != self._group:
            return False
        if change.gap is not None:
            gap = change.gap
            stored = self.gaps.get(gap.id)
            if stored is not None and stored.updated_at > gap.updated_at:
                self.stale += 1
                return False
            if stored is not None and stored == gap and change.kind is not ChangeKind.ABSORBED:
                if self.owners.get(gap.id) == change.instance:
                    return False
                self.owners[gap.id] = change.instance
            elif change.kind is ChangeKind.ABSORBED:
                # Joined into its left neighbour (R12): the gap is gone, not closed.
                self.gaps.remove(gap.id)
                self.owners.pop(gap.id, None)
            else:
                self.gaps.put(gap)
                self.owners[gap.id] = change.instance
        else:
            assert change.skipped is not None
            s = change.skipped
            key = (s.topic, s.partition, s.first_offset)
            self._skipped.pop(key, None)
            self._skipped[key] = (s, change.instance)
            while len(self._skipped) > self._limit:
                self._skipped.popitem(last=False)
        self.applied += 1
        return True

    def settle(self, change: GapChange) -> GapChange:
        """Apply a change read from the gap log (:meth:`apply`) and return it as others
        should keep it (the ``/events`` buffer): with the view's own record of the gap
        when the two are equal, so that one object serves both."""
        self.apply(change)
        if change.gap is None:
            return change
        stored = self.gaps.get(change.gap.id)
        if stored is None or stored is change.gap or stored != change.gap:
            return change
        return dataclasses.replace(change, gap=stored)

    def apply_all(self, changes: Iterable[GapChange]) -> None:
        """Take several changes in order."""
        for change in changes:
            self.apply(change)

    def expire(self, now: float) -> int:
        """Apply retention (rule 4); returns how many gaps were dropped."""
        horizon = now - self._retention
        before = len(self.gaps)
        self.gaps.expire(now)
        stale_open = [
            gap.id
            for gap in self.gaps.values()
            if gap.state is GapState.OPEN and gap.updated_at < horizon
        ]
        for gap_id in stale_open:
            self.gaps.remove(gap_id)
        if len(self.owners) > len(self.gaps):
            self.owners = {k: v for k, v in self.owners.items() if self.gaps.get(k) is not None}
        while self._skipped:
            first = next(iter(self._skipped.values()))[0]
            if first.at >= horizon:
                break
            self._skipped.popitem(last=False)
        return before - len(self.gaps)

    # --- reading ----------------------------------------------------------------------

    def get(self, gap_id: str) -> tuple[Gap, str] | None:
        """The gap and its owning instance, or ``None``."""
        gap = self.gaps.get(gap_id)
        if gap is None:
            return None
        return gap, self.owners.get(gap_id, "")

    def owner(self, gap_id: str) -> str:
        """The instance that published the gap's newest state ("" if unknown)."""
        return self.owners.get(gap_id, "")

    def query(self, query: GapQuery, *, limit: int, cursor: str | None = None) -> GapPage:
        """Like :meth:`GapStore.query`, over the whole fleet."""
        return self.gaps.query(query, limit=limit, cursor=cursor)

    def skipped(self) -> list[tuple[RecordsSkipped, str]]:
        """Skipped ranges with the instance that reported them, newest first."""
        return list(reversed(self._skipped.values()))

    def gaps_of(self, topic: str, partition: int, states: frozenset[GapState]) -> list[Gap]:
        """Every stored gap of one partition in one of ``states``."""
        return [
            gap
            for gap in self.gaps.values()
            if gap.topic == topic and gap.partition == partition and gap.state in states
        ]


class FleetFeed:
    """An event subscriber putting this instance's own gap changes into the fleet view at
    once (the gap log brings them back later, which then changes nothing)."""

    name = "fleet-view"

    def __init__(self, fleet: FleetStore, *, group: str, instance: str) -> None:
        self._fleet = fleet
        self._group = group
        self._instance = instance

    def handle(self, events: Sequence[Event], now: float) -> None:
        """Apply the gap changes among ``events``."""
        self._fleet.apply_all(
            changes_from_events(events, group=self._group, instance=self._instance, now=now)
        )
