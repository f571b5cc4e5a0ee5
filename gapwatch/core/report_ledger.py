"""Producer reports held by one partition's tracker until their claims can be judged (R12).

A report is held in one of three places: on its stream (a pending claim in the stream's
aux, the stream listed here so a tick walks only those), as an *orphan* when its stream
has not been read yet, or, for an orphan that matured with no claim to make, as its
failed ranges alone (*told orphans*, kept until ``idle_eviction`` for the stream's head
gap, should the stream appear). The ledger keeps these bounded and hands back *claims*:
reports whose time has come; what a claim means for gaps is the tracker's rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gapwatch.core.counters import TrackerCounters
from gapwatch.core.model import ProducerReport
from gapwatch.core.stream import PendingReport, Stream

# Bounds on what untrusted reports can make the tracker remember.
MAX_PENDING_REPORTS = 16
MAX_TOLD_RANGES = 64
MAX_ORPHAN_REPORTS = 1024

StreamId = tuple[str, int]
"""(producer, epoch): how an orphan names the stream it waits for."""


@dataclass(frozen=True, slots=True)
class OrphanClaim:
    """A report about a stream never read here, applied at ``at``, now settled."""

    report: ProducerReport
    at: float


@dataclass(frozen=True, slots=True)
class StreamClaim:
    """A pending claim on ``stream``, now settled."""

    stream: Stream
    pending: PendingReport


class ReportLedger:
    """Orphan reports, told orphans, and the streams with pending claims."""

    __slots__ = ("_counters", "_orphans", "_reporting", "_told_orphans")

    def __init__(self, counters: TrackerCounters) -> None:
        self._counters = counters
        self._orphans: dict[StreamId, tuple[float, ProducerReport]] = {}
        self._told_orphans: dict[StreamId, tuple[float, ProducerReport]] = {}
        self._reporting: dict[Stream, None] = {}

    def has_claims(self) -> bool:
        """Whether anything is held (a tick walks the ledger only then)."""
        return bool(self._reporting or self._orphans or self._told_orphans)

    def is_pending(self, st: Stream) -> bool:
        """Whether a claim on ``st`` waits for R11 (such a stream is not evicted idle)."""
        return st in self._reporting

    def forget(self, st: Stream) -> None:
        """``st`` is gone: its claims are no longer walked."""
        self._reporting.pop(st, None)

    # --- taking reports --------------------------------------------------------------

    def hold_orphan(self, report: ProducerReport, now: float) -> None:
        """Hold a report whose stream has not been read yet (counted ``reports_unmatched``
        when the ledger is full)."""
        if len(self._orphans) >= MAX_ORPHAN_REPORTS:
            self._counters.reports_unmatched += 1
        else:
            self._orphans[(report.producer, report.epoch)] = (now, report)

    def hold_told(self, report: ProducerReport, at: float) -> None:
        """Keep the failed ranges of an orphan that matured with no claim: if the stream
        shows up later, a head gap over them must be told, not silent."""
        if report.failed and len(self._told_orphans) < MAX_ORPHAN_REPORTS:
            told_only = ProducerReport(
                producer=report.producer,
                epoch=report.epoch,
                topic=report.topic,
                partition=report.partition,
                highest_assigned=None,
                highest_acked=None,
                failed=report.failed,
                final=False,
            )
            self._told_orphans[(report.producer, report.epoch)] = (at, told_only)

    def adopt(self, st: Stream) -> Iterator[tuple[ProducerReport, float]]:
        """The reports (and time applied) that waited for ``st``: a pending orphan, then
        the failed ranges of one that matured meanwhile. Each is removed as it is given."""
        for held in (self._orphans, self._told_orphans):
            orphan = held.pop((st.producer, st.epoch), None)
            if orphan is not None:
                yield orphan[1], orphan[0]

    def queue(self, st: Stream, report: ProducerReport, at: float) -> None:
        """Record ``report``'s failed ranges above ``st.high`` and its claim on ``st``."""
        aux = st.ensure_aux()
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
            self._reporting[st] = None

    # --- claims ----------------------------------------------------------------------

    def matured(
        self, now: float, idle_eviction: float, is_settled: Callable[[float], bool]
    ) -> Iterator[OrphanClaim | StreamClaim]:
        """Every claim for which R11 now holds (``is_settled(applied at)``), in order:
        orphans first, then each stream's pending claims, oldest first. A claim is
        removed from the ledger as it is given; consume each before asking for the next
        (the ledger tidies a stream once its claims are all given)."""
        for key, (at, report) in list(self._orphans.items()):
            if is_settled(at):
                del self._orphans[key]
                yield OrphanClaim(report, at)
        for key, (at, _) in list(self._told_orphans.items()):
            if now - at > idle_eviction:  # its stream is as good as gone
                del self._told_orphans[key]
        for st in list(self._reporting):
            aux = st.aux
            if aux is None or not aux.reports:
                del self._reporting[st]
                continue
            keep = []
            for pending in aux.reports:
                if is_settled(pending.reported_at):
                    yield StreamClaim(st, pending)
                else:
                    keep.append(pending)
            aux.reports = keep
            if not keep:
                del self._reporting[st]
                st.drop_aux_if_empty()

    # --- snapshots -------------------------------------------------------------------

    def orphans(self) -> list[tuple[float, ProducerReport]]:
        """Held orphan reports with the time each was applied."""
        return list(self._orphans.values())

    def told_orphans(self) -> list[tuple[float, ProducerReport]]:
        """Held failed ranges of matured orphans with the time each was applied."""
        return list(self._told_orphans.values())

    def restore(
        self,
        *,
        orphans: list[tuple[float, ProducerReport]],
        told_orphans: list[tuple[float, ProducerReport]],
        reporting: list[Stream],
    ) -> None:
        """Fill an empty ledger from a snapshot."""
        for at, report in orphans:
            self._orphans[(report.producer, report.epoch)] = (at, report)
        for at, report in told_orphans:
            self._told_orphans[(report.producer, report.epoch)] = (at, report)
        for st in reporting:
            self._reporting[st] = None


def split_told(
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
