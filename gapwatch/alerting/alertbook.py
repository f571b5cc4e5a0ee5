"""Which Alertmanager alerts are active, with what labels, and until when. Pure: no I/O.

:class:`AlertBook` takes tracker events and a ``now`` and answers, at any time, the list of
alerts to post (:meth:`AlertBook.current`). The sink (:mod:`gapwatch.alerting.alertmanager`)
posts that list when it changes and every ``repost_interval`` seconds. Rules, in order:

1. **One alert per lost gap.** A confirmed gap (``GapConfirmed``) fires
   ``GapwatchGapConfirmed``, a truncated one (``RecordsTruncated``) ``GapwatchGapTruncated``;
   severity ``critical``; labels ``alertname, severity, topic, partition, producer,
   gap_id`` (stable: Alertmanager deduplicates on them, so re-posts from any instance are
   the same alert); ``startsAt`` is the confirmation time. A gap already in the book is
   only updated.
2. **Storm control.** A partition with ``max_per_partition`` loss alerts firing puts
   further lost gaps into its one ``GapwatchGapsOverflow`` alert (no ``gap_id``), which
   summarises how many gaps and records it holds. An overflowed gap never gets an alert
   of its own later: that would page again for old news.
3. **Hold.** A lost gap stays firing for ``loss_hold`` seconds after confirmation, then
   resolves: it is posted with ``endsAt`` = confirmation + hold, which is in the past.
   Loss is final, so nothing else ends it; the hold exists so that the alert outlives the
   rule-based ``GapwatchMessageLoss`` it inhibits (docs/alerting.md).
   A lost gap cut in two by a producer report (``GapSplit`` of confirmed pieces, tracker
   rule R12) is one alert per piece: the left piece keeps its alert, updated (count,
   range, ``producer_told``), the right one gets its own from the same ``startsAt`` (or
   joins the overflow alert its left piece is in).
4. **Recovery.** A gap whose every missing record arrived later (``GapRecovered`` with the
   gap recovered in full) resolves at once (``endsAt`` = now); an overflow member leaves
   the overflow alert, which resolves when it has none left.
5. **endsAt while firing** is ``min(end of hold, now + 4 * repost_interval)``: if gapwatch
   dies, Alertmanager resolves its alerts by itself a few missed re-posts later (the way
   Prometheus sets ``endsAt``), and never later than the hold.
6. **Resolved alerts are re-sent** (``endsAt`` in the past) for ``4 * repost_interval``
   after resolving, in case a post was lost or Alertmanager restarted; then forgotten.
7. **Duplicate bursts.** ``duplicate_threshold`` or more duplicate records of one
   producer stream on one partition within ``duplicate_window`` seconds fire a
   ``GapwatchDuplicateBurst`` warning (labels ``alertname, severity, topic, partition,
   producer``), firing until ``duplicate_hold`` seconds after the last duplicate.

The timings and limits are an :class:`AlertPolicy` (:mod:`gapwatch.alerting.alertpolicy`);
what each alert says is built in :mod:`gapwatch.alerting.alertkinds`.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from gapwatch.alerting.alertkinds import (
    Alert,
    burst_alert,
    gap_alert,
    overflow_alert,
)
from gapwatch.alerting.alertpolicy import AlertPolicy
from gapwatch.core.events import (
    DuplicateRecords,
    Event,
    GapConfirmed,
    GapRecovered,
    GapSplit,
    GapTold,
    RecordsTruncated,
)
from gapwatch.core.model import Gap, GapState
from gapwatch.gaps.origins import OriginBook

_LOSS_STATES: Final = frozenset((GapState.CONFIRMED, GapState.TRUNCATED))

PartitionKey = tuple[str, int]


@dataclass(slots=True)
class _GapAlert:
    gap: Gap
    starts_at: float
    expires_at: float
    resolved_at: float | None = None


@dataclass(slots=True)
class _Overflow:
    starts_at: float
    members: dict[str, tuple[float, int]] = field(default_factory=dict)  # id -> (expiry, n)
    resolved_at: float | None = None


@dataclass(slots=True)
class _Burst:
    window: deque[tuple[float, int]] = field(default_factory=deque)
    in_window: int = 0
    epoch: int = 0
    starts_at: float | None = None
    last_at: float = 0.0
    records: int = 0
    resolved_at: float | None = None


class AlertBook:
    """The alert state of one instance (rules in the module docstring)."""

    def __init__(self, policy: AlertPolicy, *, origins: OriginBook | None = None) -> None:
        self.policy = policy
        # Where a loss on a mirrored topic came from, asked at every post: the origin is
        # decided after confirmation; origin_decided() makes the sink post it at once.
        self._origins = origins
        self._gaps: dict[str, _GapAlert] = {}
        self._firing: dict[PartitionKey, set[str]] = {}
        self._overflow: dict[PartitionKey, _Overflow] = {}
        self._overflowed: dict[str, PartitionKey] = {}
        self._bursts: dict[tuple[str, int, str], _Burst] = {}
        self.version = 0  # bumped whenever an alert starts, resolves or changes what it says

    # --- input ------------------------------------------------------------------------

    def link_to(self, external_url: str) -> None:
        """Alerts built from now on link to the monitor at ``external_url``."""
        self.policy = dataclasses.replace(self.policy, external_url=external_url)

    def apply(self, events: Sequence[Event], now: float) -> None:
        """Take the tracker's events (others than the ones below are ignored)."""
        for event in events:
            if isinstance(event, GapConfirmed):
                self._lost(event.gap, now)
            elif isinstance(event, RecordsTruncated):
                for gap in event.gaps:
                    self._lost(gap, now)
            elif isinstance(event, GapRecovered):
                self._recovered(event.gap, now)
            elif isinstance(event, GapSplit):
                self._split(event, now)
            elif isinstance(event, GapTold):
                self._told(event.gap)
            elif isinstance(event, DuplicateRecords):
                self._duplicates(event, now)

    def adopt(self, gaps: Iterable[Gap], now: float) -> None:
        """Lost gaps of a partition this instance just took over, still within their hold."""
        for gap in gaps:
            if gap.state in _LOSS_STATES:
                self._lost(gap, now)

    def _lost(self, gap: Gap, now: float) -> None:
        starts = gap.confirmed_at if gap.confirmed_at is not None else gap.updated_at
        expires = starts + self.policy.loss_hold
        known = self._gaps.get(gap.id)
        if known is not None:
            known.gap = gap
            return
        key = (gap.topic, gap.partition)
        if gap.id in self._overflowed or expires <= now:
            return
        firing = self._firing.setdefault(key, set())
        if len(firing) < self.policy.max_per_partition:  # rule 2
            firing.add(gap.id)
            self._gaps[gap.id] = _GapAlert(gap, starts, expires)
        else:
            overflow = self._overflow.get(key)
            if overflow is None or overflow.resolved_at is not None:
                overflow = self._overflow[key] = _Overflow(starts_at=now)
            overflow.members[gap.id] = (expires, gap.count)
            self._overflowed[gap.id] = key
        self.version += 1

    def _told(self, gap: Gap) -> None:
        # A firing alert's annotations say whether the producer was told: re-post them.
        # A gap without an alert (still open, or past its hold) needs nothing here.
        known = self._gaps.get(gap.id)
        if known is not None:
            known.gap = gap
            self.version += 1

    def origin_decided(self, gap_id: str) -> None:
        """The origin of ``gap_id`` was decided: its alert's annotations change, so post
        it again now rather than at the next re-post."""
        if gap_id in self._gaps:
            self.version += 1

    def _split(self, event: GapSplit, now: float) -> None:
        # A lost gap cut in two (a producer report's failed range covered part of it,
        # R12): the left piece keeps the id and its alert, updated; the right piece is a
        # loss of its own, with an alert of its own from the same confirmation time.
        pieces = (event.left, event.right)
        key = self._overflowed.get(event.left.id)
        for piece in pieces:
            if piece.state not in _LOSS_STATES:
                continue
            if key is None:
                self._lost(piece, now)
            else:
                # Old news summarised by the overflow alert (rule 2): both pieces stay in it.
                members = self._overflow[key].members
                expires = members[event.left.id][0]
                members[piece.id] = (expires, piece.count)
                self._overflowed[piece.id] = key
        for piece in pieces:
            if piece.state is GapState.RECOVERED:
                self._recovered(piece, now)

    def _recovered(self, gap: Gap, now: float) -> None:
        if gap.recovered < gap.count and gap.state is not GapState.RECOVERED:
            known = self._gaps.get(gap.id)
            if known is not None:
                known.gap = gap  # annotations show the partial recovery
            return
        alert = self._gaps.get(gap.id)
        if alert is not None and alert.resolved_at is None:
            alert.gap = gap
            self._resolve(alert, now)
        key = self._overflowed.pop(gap.id, None)
        if key is not None:
            overflow = self._overflow[key]
            overflow.members.pop(gap.id, None)
            if not overflow.members and overflow.resolved_at is None:
                overflow.resolved_at = now
                self.version += 1

    def _resolve(self, alert: _GapAlert, at: float) -> None:
        alert.resolved_at = at
        self._firing.get((alert.gap.topic, alert.gap.partition), set()).discard(alert.gap.id)
        self.version += 1

    def _duplicates(self, event: DuplicateRecords, now: float) -> None:
        key = (event.key.topic, event.key.partition, event.key.producer)
        burst = self._bursts.setdefault(key, _Burst())
        burst.window.append((now, event.count))
        burst.in_window += event.count
        burst.epoch = event.key.epoch
        self._trim(burst, now)
        if burst.starts_at is not None and burst.resolved_at is None:
            burst.last_at = now
            burst.records += event.count
        elif burst.in_window >= self.policy.duplicate_threshold:
            burst.starts_at, burst.last_at, burst.resolved_at = now, now, None
            burst.records = burst.in_window
            self.version += 1

    def _trim(self, burst: _Burst, now: float) -> None:
        horizon = now - self.policy.duplicate_window
        while burst.window and burst.window[0][0] < horizon:
            burst.in_window -= burst.window.popleft()[1]

    # --- time -------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Resolve what expired (rules 3, 7) and forget what was re-sent long enough (6)."""
        keep = self.policy.firing_ttl
        for gap_id, alert in list(self._gaps.items()):
            if alert.resolved_at is None and alert.expires_at <= now:
                self._resolve(alert, alert.expires_at)
            if alert.resolved_at is not None and alert.resolved_at + keep < now:
                del self._gaps[gap_id]
        for key, overflow in list(self._overflow.items()):
            for gap_id, (expires, _) in list(overflow.members.items()):
                if expires <= now:
                    del overflow.members[gap_id]
                    del self._overflowed[gap_id]
            if not overflow.members and overflow.resolved_at is None:
                overflow.resolved_at = now
                self.version += 1
            if overflow.resolved_at is not None and overflow.resolved_at + keep < now:
                del self._overflow[key]
        for stream, burst in list(self._bursts.items()):
            self._trim(burst, now)
            end = burst.last_at + self.policy.duplicate_hold
            if burst.starts_at is not None and burst.resolved_at is None and end <= now:
                burst.resolved_at = end
                self.version += 1
            is_done = burst.starts_at is None or (
                burst.resolved_at is not None and burst.resolved_at + keep < now
            )
            if is_done and not burst.window:
                del self._bursts[stream]

    def next_deadline(self) -> float | None:
        """The earliest time an alert resolves by itself (when to call :meth:`advance`)."""
        times = [a.expires_at for a in self._gaps.values() if a.resolved_at is None]
        times += [e for o in self._overflow.values() for e, _ in o.members.values()]
        times += [
            b.last_at + self.policy.duplicate_hold
            for b in self._bursts.values()
            if b.starts_at is not None and b.resolved_at is None
        ]
        return min(times) if times else None

    # --- output -----------------------------------------------------------------------

    def firing_count(self) -> int:
        """Alerts firing now (loss, overflow and duplicate alerts)."""
        gaps = sum(1 for a in self._gaps.values() if a.resolved_at is None)
        overflows = sum(1 for o in self._overflow.values() if o.resolved_at is None)
        bursts = sum(
            1 for b in self._bursts.values() if b.starts_at is not None and b.resolved_at is None
        )
        return gaps + overflows + bursts

    def current(self, now: float) -> list[Alert]:
        """Every alert to post now: the firing ones and the recently resolved ones."""
        policy = self.policy
        ttl_end = now + policy.firing_ttl
        origins = self._origins
        alerts = [
            gap_alert(
                a.gap,
                a.starts_at,
                _end(a.resolved_at, min(a.expires_at, ttl_end)),
                policy,
                mirror=None if origins is None else origins.fields_of(a.gap),
            )
            for a in self._gaps.values()
        ]
        for (topic, partition), overflow in self._overflow.items():
            latest = max((e for e, _ in overflow.members.values()), default=now)
            ends = _end(overflow.resolved_at, min(latest, ttl_end))
            alerts.append(
                overflow_alert(
                    topic,
                    partition,
                    gaps=len(overflow.members),
                    records=sum(n for _, n in overflow.members.values()),
                    starts_at=overflow.starts_at,
                    ends_at=ends,
                    policy=policy,
                )
            )
        for (topic, partition, producer), burst in self._bursts.items():
            if burst.starts_at is None:
                continue
            hold_end = burst.last_at + policy.duplicate_hold
            ends = _end(burst.resolved_at, min(hold_end, ttl_end))
            alerts.append(
                burst_alert(
                    topic,
                    partition,
                    producer,
                    epoch=burst.epoch,
                    records=burst.records,
                    starts_at=burst.starts_at,
                    ends_at=ends,
                    policy=policy,
                )
            )
        return alerts


def _end(resolved_at: float | None, firing_end: float) -> float:
    return firing_end if resolved_at is None else resolved_at
