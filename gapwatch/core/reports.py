"""R12: what a producer's report adds to what the log shows (tail loss, unknown fate).

A producer knows what it stamped and what was acknowledged; the log only shows what
arrived. A report's claims are held until the confirmation rule (R11) holds for the time
the report was applied, so records still in flight or not yet read are never called lost:

* acknowledged sequences above the highest one seen become one confirmed ``tail`` gap
  (acknowledged but absent: silent loss);
* for a ``final`` report, stamped but unacknowledged sequences above that are
  ``UnknownFate`` (not a loss), except those the producer reported failed, which become
  confirmed ``producer`` gaps with ``producer_told``;
* failed ranges mark the gaps that cover them ``producer_told``, now or when they open;
  a gap only partly covered is cut at the ranges' boundaries first, so that every gap is
  entirely told or entirely silent (silent loss is never hidden behind a told one).

These functions are the tracker's own code, kept in a module of their own for size.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from gapwatch.core.model import (
    NO_EVENTS,
    Event,
    Gap,
    GapCause,
    GapConfirmed,
    GapOpened,
    GapSplit,
    GapState,
    GapTold,
    ProducerReport,
    UnknownFate,
)
from gapwatch.core.ring import high_record_ts
from gapwatch.core.skip import is_unresolved
from gapwatch.core.stream import PendingReport, Stream
from gapwatch.core.wire import MAX_U64

if TYPE_CHECKING:
    from gapwatch.core.tracker import PartitionTracker

# Bounds on what untrusted reports can make the tracker remember.
MAX_PENDING_REPORTS = 16
MAX_TOLD_RANGES = 64
MAX_ORPHAN_REPORTS = 1024


def _is_sane(report: ProducerReport) -> bool:
    def ok(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_U64

    if not (isinstance(report.producer, str) and ok(report.epoch)):
        return False
    for value in (report.highest_assigned, report.highest_acked):
        if value is not None and not ok(value):
            return False
    failed: object = report.failed  # parsed from JSON by an adapter: check, do not trust
    if not isinstance(failed, tuple):
        return False
    return all(
        isinstance(r, tuple) and len(r) == 2 and ok(r[0]) and ok(r[1]) and r[0] <= r[1]
        for r in failed
    )


def apply_report(t: PartitionTracker, report: ProducerReport, now: float) -> tuple[Event, ...]:
    """Take ``report``; counted ``reports_unmatched`` if it is not about this partition."""
    counters = t._counters
    if report.topic != t.topic or report.partition != t.partition or not _is_sane(report):
        counters.reports_unmatched += 1
        return NO_EVENTS
    st = t._streams.get(report.producer)
    if st is None or st.epoch != report.epoch:
        st = t._retired.get((report.producer, report.epoch))
    if st is None:
        # Not seen yet (the monitor may be behind): hold it until the stream appears or
        # the claim matures.
        if len(t._orphans) >= MAX_ORPHAN_REPORTS:
            counters.reports_unmatched += 1
        else:
            t._orphans[(report.producer, report.epoch)] = (now, report)
        return NO_EVENTS
    events = queue_report(t, st, report, now)
    return tuple(events) if events else NO_EVENTS


def adopt_orphans(t: PartitionTracker, st: Stream) -> list[Event]:
    """Apply the reports that arrived before ``st`` did: a pending one, and the failed
    ranges of one that matured meanwhile; returns the splits of gaps they tell in part."""
    events: list[Event] = []
    for held in (t._orphans, t._told_orphans):
        orphan = held.pop((st.producer, st.epoch), None)
        if orphan is not None:
            events.extend(queue_report(t, st, orphan[1], orphan[0]))
    return events


def queue_report(t: PartitionTracker, st: Stream, report: ProducerReport, at: float) -> list[Event]:
    """Record the report's failed ranges and its pending claim on ``st``; returns the
    splits of gaps that the failed ranges cover only in part."""
    aux = st.ensure_aux()
    events = _tell_gaps(t, st, report.failed, at) if report.failed and aux.ranges else []
    for first, last in report.failed:
        if last > st.high and len(aux.told) < MAX_TOLD_RANGES:
            aux.told.append((max(first, st.high + 1), last))
    acked = -1 if report.highest_acked is None else report.highest_acked
    assigned = -1 if report.highest_assigned is None else report.highest_assigned
    if acked > st.high or (report.final and assigned > st.high):
        pending = PendingReport(at, acked, max(assigned, acked), final=report.final)
        if len(aux.reports) >= MAX_PENDING_REPORTS:
            # Keep the oldest claims (they mature first); the newest is the freshest word.
            aux.reports[-1] = pending
        else:
            aux.reports.append(pending)
        t._reporting[st] = None
    return events


def _tell_gaps(
    t: PartitionTracker, st: Stream, failed: tuple[tuple[int, int], ...], at: float
) -> list[Event]:
    """Gaps already open or confirmed over failed sequences: the producer knew of those.

    A gap the ranges cover in full is marked ``producer_told``; one they cover in part is
    cut into told and silent pieces (:func:`divide_gap`).
    """
    aux = st.aux
    assert aux is not None
    book = t._book
    spans = sorted(failed)
    hit = dict.fromkeys(
        r.gap_id for r in aux.ranges if any(lo <= r.last and r.first <= hi for lo, hi in spans)
    )
    events: list[Event] = []
    for gid in hit:
        gap = book.active.get(gid)
        if gap is None or gap.producer_told:
            continue  # a told gap is told in full: every gap is cut when it opens
        runs = _split_told(spans, gap.first_seq, gap.last_seq)
        if len(runs) == 1 or gap.count != gap.last_seq - gap.first_seq + 1:
            told = replace(gap, producer_told=True, updated_at=max(at, gap.updated_at))
            book.update(told)
            # An event, so /gaps, the gap log and a firing alert learn it now, not at the
            # gap's next state change.
            events.append(GapTold(told))
        else:
            events.extend(divide_gap(t, st, gap, runs, at))
    return events


def divide_gap(
    t: PartitionTracker, st: Stream, gap: Gap, runs: list[tuple[int, int, bool]], at: float
) -> list[Event]:
    """Cut the active ``gap`` into the told / silent ``runs`` of its sequences (R12).

    The first piece keeps the id, the others get the id of their own first sequence (as a
    R6 split does), so ids stay stable across restarts. Every piece keeps the gap's state,
    times and bounding records (nothing was read between the pieces); a confirmed piece's
    ``recovered`` is what came back of its own sequences, and a piece whose every record
    came back is ``recovered`` (R7). One ``GapSplit`` (``seq`` ``None``) per boundary.
    """
    book = t._book
    missing = [(r.first, r.last) for r in st.ranges if r.gap_id == gap.id]
    pieces: list[Gap] = []
    for i, (lo, hi, told) in enumerate(runs):
        count = hi - lo + 1
        gid = gap.id if i == 0 else book.new_id(gap.key, lo, gap.generation, gap.cause)
        piece = replace(
            gap,
            id=gid,
            first_seq=lo,
            last_seq=hi,
            count=count,
            producer_told=told,
            # A report held for a stream not yet read is older than the gap it cuts; the
            # fleet view keeps the newest version of a gap id, so the time never goes back.
            updated_at=max(at, gap.updated_at),
        )
        if gap.state is not GapState.OPEN:
            left = sum(min(b, hi) - max(a, lo) + 1 for a, b in missing if a <= hi and lo <= b)
            piece = replace(piece, recovered=count - left)
            if not left and gap.state is GapState.CONFIRMED:
                piece = replace(piece, state=GapState.RECOVERED)
        pieces.append(piece)
    book.divide(gap, pieces, st)
    if gap.id in t._doubtful:
        t._doubtful.update(p.id for p in pieces)  # every piece was open at the skip (R16)
    return [GapSplit(pieces[i], pieces[i + 1], None) for i in range(len(pieces) - 1)]


def open_gap(t: PartitionTracker, st: Stream, gap: Gap) -> tuple[Event, ...]:
    """Open ``gap`` (R5), cut at the boundaries of the failed ranges already reported for
    ``st``: one ``GapOpened`` per piece, each entirely ``producer_told`` or not."""
    aux = st.aux
    assert aux is not None
    book = t._book
    events: list[Event] = []
    for i, (lo, hi, told) in enumerate(_split_told(aux.told, gap.first_seq, gap.last_seq)):
        gid = gap.id if i == 0 else book.new_id(gap.key, lo, gap.generation, gap.cause)
        piece = replace(
            gap, id=gid, first_seq=lo, last_seq=hi, count=hi - lo + 1, producer_told=told
        )
        book.add(piece, st)
        events.append(GapOpened(piece))
    return tuple(events)


def mature_reports(t: PartitionTracker, now: float) -> list[Event]:
    """Resolve every pending claim for which the confirmation rule now holds."""
    events: list[Event] = []
    for key, (at, report) in list(t._orphans.items()):
        if t._is_settled(at, now):
            del t._orphans[key]
            events.extend(_orphan_matured(t, report, at, now))
    for key, (at, _) in list(t._told_orphans.items()):
        if now - at > t.config.idle_eviction:  # its stream is as good as gone
            del t._told_orphans[key]
    for st in list(t._reporting):
        aux = st.aux
        if aux is None or not aux.reports:
            del t._reporting[st]
            continue
        keep = []
        for pending in aux.reports:
            if t._is_settled(pending.reported_at, now):
                events.extend(_matured(t, st, pending, now))
            else:
                keep.append(pending)
        aux.reports = keep
        if not keep:
            del t._reporting[st]
            st.drop_aux_if_empty()
    return events


def _orphan_matured(
    t: PartitionTracker, report: ProducerReport, at: float, now: float
) -> list[Event]:
    current = t._streams.get(report.producer)
    witnessed_older = (current is not None and current.epoch < report.epoch) or any(
        producer == report.producer and epoch < report.epoch for producer, epoch in t._retired
    )
    if not witnessed_older or report.highest_acked is None:
        # Nothing of this stream was ever read, and without an older epoch watched here
        # we cannot tell whether its records predate the monitor's start: no claim.
        t._counters.reports_unmatched += 1
        if report.failed and len(t._told_orphans) < MAX_ORPHAN_REPORTS:
            # What the application was told still holds: if the stream shows up later, a
            # head gap over these sequences must be told, not silent (R12).
            told_only = replace(report, highest_assigned=None, highest_acked=None, final=False)
            t._told_orphans[(report.producer, report.epoch)] = (at, told_only)
        return []
    if current is not None and current.epoch < report.epoch and is_unresolved(t, current):
        # R16: the new epoch may have begun among offsets deleted before they were read.
        acked = report.highest_acked
        t._counters.unknown_fate += acked + 1
        return [UnknownFate(t._key(report.producer, report.epoch), 0, acked, acked + 1, now)]
    # We watched an older epoch of this producer here, so this epoch's acknowledged
    # records should have been read: all of them are missing.
    return [
        _confirmed_gap(
            t, None, report.producer, report.epoch, lo, hi, GapCause.TAIL, at, now, told=told
        )
        for lo, hi, told in _split_told(report.failed, 0, report.highest_acked)
    ]


def _matured(t: PartitionTracker, st: Stream, pending: PendingReport, now: float) -> list[Event]:
    events: list[Event] = []
    aux = st.aux
    assert aux is not None
    above = st.high  # the final part starts after the acknowledged part
    if pending.acked > st.high and is_unresolved(t, st):
        # R16: nothing of this stream was read since retention deleted unread offsets;
        # its acknowledged records may have been among them: not provably lost.
        events.append(_unknown_fate(t, st, st.high + 1, pending.acked, now))
        above = pending.acked
    elif pending.acked > st.high:
        first, last = st.high + 1, pending.acked
        # Cut at failed-range boundaries: acknowledged-but-absent records are silent loss.
        for lo, hi, told in _split_told(aux.told, first, last):
            events.append(
                _confirmed_gap(
                    t,
                    st,
                    st.producer,
                    st.epoch,
                    lo,
                    hi,
                    GapCause.TAIL,
                    pending.reported_at,
                    now,
                    told=told,
                )
            )
        st.high = above = last
    if pending.final and pending.assigned > above:
        for lo, hi, told in _split_told(aux.told, above + 1, pending.assigned):
            if told:
                events.append(
                    _confirmed_gap(
                        t,
                        None,
                        st.producer,
                        st.epoch,
                        lo,
                        hi,
                        GapCause.PRODUCER,
                        pending.reported_at,
                        now,
                        told=True,
                    )
                )
            else:
                events.append(_unknown_fate(t, st, lo, hi, now))
    aux.told = [
        (span_first, span_last) for span_first, span_last in aux.told if span_last > st.high
    ]
    return events


def _unknown_fate(t: PartitionTracker, st: Stream, first: int, last: int, now: float) -> Event:
    t._counters.unknown_fate += last - first + 1
    return UnknownFate(t._key(st.producer, st.epoch), first, last, last - first + 1, now)


def _confirmed_gap(
    t: PartitionTracker,
    st: Stream | None,
    producer: str,
    epoch: int,
    first: int,
    last: int,
    cause: GapCause,
    opened_at: float,
    now: float,
    *,
    told: bool,
) -> GapConfirmed:
    generation = 0 if st is None else st.generation
    key = t._key(producer, epoch)
    gap = Gap(
        id=t._book.new_id(key, first, generation, cause),
        topic=t.topic,
        partition=t.partition,
        producer=producer,
        epoch=epoch,
        first_seq=first,
        last_seq=last,
        count=last - first + 1,
        state=GapState.CONFIRMED,
        cause=cause,
        opened_at=opened_at,
        updated_at=now,
        confirmed_at=now,
        offset_before=None if st is None else st.high_offset,
        timestamp_before_ms=None if st is None else high_record_ts(t, st),
        producer_told=told,
        generation=generation,
    )
    t._book.add(gap, st, watch=st is not None)
    return GapConfirmed(gap)


def _split_told(
    told: list[tuple[int, int]] | tuple[tuple[int, int], ...], first: int, last: int
) -> list[tuple[int, int, bool]]:
    """``first..last`` cut into maximal runs that are / are not inside a told range
    (overlapping or adjacent told ranges make one run)."""
    out: list[tuple[int, int, bool]] = []
    cursor = first
    for span_first, span_last in sorted(told):
        lo, hi = max(span_first, cursor), min(span_last, last)
        if lo > hi:
            continue
        if lo > cursor:
            out.append((cursor, lo - 1, False))
        if out and out[-1][2] and out[-1][1] + 1 == lo:
            out[-1] = (out[-1][0], hi, True)
        else:
            out.append((lo, hi, True))
        cursor = hi + 1
    if cursor <= last:
        out.append((cursor, last, False))
    return out
