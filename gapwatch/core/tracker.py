"""The sequence tracker of one partition: facts and ``now`` in, events out, no I/O.

This module is the rule table: each rule below is one method of
:class:`PartitionTracker` (named in brackets), and one test in
``tests/unit/test_tracker_rules.py`` is named after it. The state the rules drive lives
in objects that own it, and nothing else writes it: the streams
(:class:`~gapwatch.core.streamtable.StreamTable` of
:class:`~gapwatch.core.stream.Stream`), the gaps and gap counters
(:class:`~gapwatch.core.gapbook.GapBook`), the truncation ring
(:class:`~gapwatch.core.ring.Ring`), held producer reports
(:class:`~gapwatch.core.report_ledger.ReportLedger`) and the read position against the
high watermarks (:class:`~gapwatch.core.progress.ReadProgress`). "Stream" is one
(producer, epoch) on this partition; ``high`` is the highest sequence seen on it.

For every stamped record (:meth:`PartitionTracker.observe`):

R1  in_order      -- same epoch and ``seq == high + 1``: advance. The hot path: no allocation
                     (:meth:`~PartitionTracker.observe`, then ``_decide`` tries R2-R10).
R2  first_sight   -- unknown producer: ``seq`` is the baseline, no gap (retention may have
                     deleted its earlier records; the monitor may have started late).
                     [``_first_sight``]
R3  new_epoch     -- a newer epoch of a tracked producer ends the old stream (kept, retired,
                     for its gaps and reports). Because the tracker witnessed the previous
                     epoch, a new epoch first seen at ``seq > 0`` opens a head gap ``0..seq-1``.
                     [``_new_epoch``]
R4  old_epoch     -- a record of an older epoch fills a gap of that retired epoch if it can,
                     else it is flagged ``ZombieEpoch`` and changes nothing. [``_old_epoch``]
R5  jump_ahead    -- ``seq > high + 1``: open a gap ``high+1..seq-1`` at once, bounded by the
                     records just before (``high``) and just after (this one). [``_jump_ahead``]
R6  late          -- ``seq`` inside an open gap: shrink, split (the right piece gets the id
                     of its own first sequence) or heal it. Counted ``late``, never lost.
                     [``_late``, reached through ``_missing_arrived``]
R7  recovered     -- ``seq`` inside a confirmed or truncated gap: counted ``recovered`` on
                     the gap; the loss count is not rewritten. A confirmed gap whose every
                     record came back becomes ``recovered``. [``_recovered``]
R8  reset         -- ``seq == 0`` not inside a gap, with a record timestamp strictly newer
                     than the stream's newest record: the producer restarted the same epoch
                     (a new generation), one ``SequenceReset``. Tie-break: a Kafka retry
                     resends a batch with its original CreateTime, so a duplicated record 0
                     is never newer than records created after it and falls to R10. (If
                     the newest record has left the ring, the oldest timestamp in the ring
                     stands in for it: it is at least as new, up to producer clock skew.)
                     [``_reset``]
R9  before_base   -- ``seq`` below the baseline of a stream first seen mid-way, while R11
                     does not yet hold for its first sight: possibly a reordered record,
                     counted ``late``. Once R11 holds, no reordered record can still
                     arrive, so such a record is a duplicate (R10) and the baseline is
                     forgotten. [``_before_baseline``]
R10 duplicate     -- anything else (``seq <= high``, already seen): counted, one event.
                     [``_duplicate``]

For the other facts:

R11 confirmation  -- an open gap is confirmed lost, with its exact count, only when
                     ``now >= opened_at + grace`` and the consumer has read up to a high
                     watermark observed at ``>= opened_at + grace``
                     (:meth:`note_read_position`). [``_confirm``; the rule: ``_is_settled``]
R12 producer_report -- a report's claims mature under the same rule from the time it was
                     applied: acknowledged sequences above ``high`` become a confirmed tail
                     gap; for a final report, unacknowledged ones become ``UnknownFate`` and
                     failed ones confirmed ``producer_told`` gaps; failed ranges mark the
                     gaps that cover them ``producer_told``, cutting a gap they cover only in
                     part (when it opens, or later: ``GapSplit`` with ``seq`` None) so that
                     every gap is entirely told or entirely silent.
                     [``apply_producer_report``, ``_mature_reports``]
R13 truncation    -- the log end moved below offsets already read (:meth:`log_truncated`),
                     or the log diverged from what was read (:meth:`find_divergence` on
                     records re-read after a leader change, then :meth:`log_diverged_at`):
                     the ring names the sequences that are gone (``truncated`` gaps, no
                     longer "seen", so a re-sent copy is recovered, not a duplicate) and
                     is rewound. Bound: ``ring_size`` records; offsets truncated below the
                     ring are ``unaccounted``, a divergence at the ring's oldest record is
                     ``beyond_ring`` (depth unknown). [``_truncate``]
R14 eviction      -- streams idle for ``idle_eviction`` with no open gap are forgotten; at
                     ``max_streams`` the least recently seen are. Both counted and reported.
                     [``_evict_idle``, ``_evict_for_cap``; what goes with a stream:
                     ``_forget_stream``]
R15 untrusted     -- unstamped and malformed records are counted, nothing else.
                     [``observe_unstamped``, ``observe_malformed``]
R16 skipped       -- retention deleted offsets before they were read
                     (:meth:`records_skipped`): each stream's next record that is not in
                     order is a new baseline (no gap; a restart if it goes back with a
                     newer timestamp; a duplicate if it goes back with an older one), and
                     gaps open at the skip become ``unknown``, not lost, when R11 holds
                     (their records may have been deleted unread).
                     [``records_skipped``, ``_after_skip``]

Public API (all methods are synchronous and cheap; none reads the clock)::

    t = PartitionTracker("orders", 3, config=TrackerConfig(grace_period=120))
    t.observe(offset, timestamp_ms, stamp, now) -> Sequence[Event]   # per stamped record
    t.observe_fields(offset, timestamp_ms, producer, epoch, seq, now)  # same, unpacked
    t.observe_unstamped(); t.observe_malformed(reason)               # R15
    t.note_read_position(read_offset=, high_watermark=, observed_at=) -> Sequence[Event]
    t.tick(now) -> Sequence[Event]                   # confirmations, reports, eviction
    t.apply_producer_report(report, now) -> Sequence[Event]
    t.log_truncated(new_end_offset, now) -> Sequence[Event]
    t.records_skipped(first_offset, last_offset, now) -> Sequence[Event]   # R16
    t.verify_from(), t.newest_read(before), t.find_divergence(log, log_start=, log_end=)
    t.log_diverged_at(offset, now, beyond_ring=False) -> Sequence[Event]   # R13
    t.counters (TrackerCounters), t.gaps(), t.gap(id), t.open_gaps(), t.streams()
    t.snapshot() -> bytes; PartitionTracker.restore(data, topic=, partition=, config=)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from gapwatch.core.config import TrackerConfig
from gapwatch.core.counters import TrackerCounters
from gapwatch.core.events import (
    NO_EVENTS,
    DuplicateRecords,
    EpochStarted,
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
    SequenceReset,
    StreamEvicted,
    UnknownFate,
    ZombieEpoch,
)
from gapwatch.core.gapbook import GapBook
from gapwatch.core.model import Gap, GapCause, GapState, ProducerReport, StreamInfo, StreamKey
from gapwatch.core.progress import ReadProgress
from gapwatch.core.report_codec import ReportDecodeError, validate_report
from gapwatch.core.report_ledger import (
    OrphanClaim,
    ReportLedger,
    StreamClaim,
    split_told,
)
from gapwatch.core.ring import Ring
from gapwatch.core.snapshot import TrackerState, decode, encode
from gapwatch.core.stream import Stream, StreamAux, find_range, take_seq
from gapwatch.core.streamtable import StreamTable
from gapwatch.core.wire import Stamp


class PartitionTracker:
    """Decides, record by record, what one partition's stamped records mean.

    See the module docstring for the rules and the API. Not thread-safe: one owner.
    The state lives in objects that own it: the streams (:class:`StreamTable`), the gaps
    (:class:`GapBook`), the truncation ring (:class:`Ring`), the producer reports
    (:class:`ReportLedger`) and the confirmation facts (:class:`ReadProgress`); the
    methods here are the rules that drive them.
    """

    __slots__ = (
        "_book",
        "_counters",
        "_current",
        "_ledger",
        "_next_sweep",
        "_progress",
        "_ring",
        "_streams",
        "config",
        "partition",
        "topic",
    )

    def __init__(self, topic: str, partition: int, *, config: TrackerConfig | None = None) -> None:
        self.topic = topic
        self.partition = partition
        self.config = config = config if config is not None else TrackerConfig()
        self._counters = counters = TrackerCounters()
        self._book = GapBook(
            counters, max_tracked=config.max_tracked_gaps, max_closed=config.max_closed_gaps
        )
        self._streams = StreamTable()
        # The current streams by producer, read once per record on the hot path.
        self._current = self._streams.current
        self._ledger = ReportLedger(counters)
        self._progress = ReadProgress(float(config.grace_period))
        self._ring = Ring(config.ring_size)
        self._next_sweep = float("-inf")

    # --- R1: the hot path ------------------------------------------------------------

    def observe(self, offset: int, timestamp_ms: int, stamp: Stamp, now: float) -> Sequence[Event]:
        """Decide what one stamped record means (R1-R10). ``stamp`` from ``parse_stamp``."""
        st = self._current.get(stamp.producer)
        seq = stamp.seq
        ring = self._ring
        n = ring.n
        i = n & ring.mask
        if not i:
            ring.seal()
        ring.offsets[i] = offset
        ring.seqs[i] = seq
        ring.ts[i] = timestamp_ms
        ring.streams[i] = st
        ring.n = n + 1
        if st is not None and st.high + 1 == seq and st.epoch == stamp.epoch:
            st.high = seq
            st.high_offset = offset
            st.last_seen = now
            return NO_EVENTS
        return self._decide(i, offset, timestamp_ms, stamp, now, st)

    def observe_fields(
        self, offset: int, timestamp_ms: int, producer: str, epoch: int, seq: int, now: float
    ) -> Sequence[Event]:
        """:meth:`observe` for a stamp given as its three fields (already validated, as
        ``parse_stamp`` would). The monitor's record path: no ``Stamp`` is built for an
        in-order record (measured: building one cost as much as this whole method)."""
        st = self._current.get(producer)
        ring = self._ring
        n = ring.n
        i = n & ring.mask
        if not i:
            ring.seal()
        ring.offsets[i] = offset
        ring.seqs[i] = seq
        ring.ts[i] = timestamp_ms
        ring.streams[i] = st
        ring.n = n + 1
        if st is not None and st.high + 1 == seq and st.epoch == epoch:
            st.high = seq
            st.high_offset = offset
            st.last_seen = now
            return NO_EVENTS
        return self._decide(i, offset, timestamp_ms, Stamp(producer, epoch, seq), now, st)

    def _decide(
        self, i: int, offset: int, ts: int, stamp: Stamp, now: float, st: Stream | None
    ) -> Sequence[Event]:
        # R2-R10 in the order of the module docstring; only the first that applies decides.
        # ``i`` is the record's ring index: the rule that decides names its stream there.
        seq = stamp.seq
        if st is None:
            return self._first_sight(i, offset, stamp, now)
        if stamp.epoch > st.epoch:
            return self._new_epoch(i, offset, ts, stamp, now, st)
        if stamp.epoch < st.epoch:
            return self._old_epoch(i, offset, ts, stamp, now, st)
        st.last_seen = now
        if st.skip_mark is not None:
            decided = self._after_skip(i, st, seq, offset, ts, now)
            if decided is not None:
                return decided
        if seq > st.high:
            return self._jump_ahead(st, seq, offset, ts, now)
        aux = st.aux
        if aux is not None and aux.ranges:
            k = find_range(aux.ranges, seq)
            if k >= 0:
                return self._missing_arrived(st, k, seq, offset, ts, now)
        if seq == 0 and ts > self._ring.reset_reference_ts(st):
            return self._reset(i, st, offset, ts, now)
        baseline = st.baseline
        if baseline is not None and seq < baseline[0]:
            if not self._is_settled(baseline[1], now):
                return self._before_baseline()
            # No reordered record can still arrive: R10 from now on.
            self._streams.drop_baseline(st)
        return self._duplicate(st, seq, offset)

    # --- R2-R4: a record not of its producer's current stream ------------------------

    def _first_sight(self, i: int, offset: int, stamp: Stamp, now: float) -> Sequence[Event]:
        """R2: an unknown producer; ``stamp.seq`` is its baseline."""
        events: list[Event] = []
        if len(self._streams) >= self.config.max_streams:
            events.extend(self._evict_for_cap(now))
        st = Stream(stamp.producer, stamp.epoch, stamp.seq, offset, now)
        self._streams.start(st)
        if stamp.seq > 0:
            self._streams.set_baseline(st, stamp.seq, now)
        self._ring.attribute(i, st)
        self._counters.streams += 1
        # No gap of a stream seen for the first time exists yet, so nothing to split.
        self._adopt_orphans(st)
        return events or NO_EVENTS

    def _new_epoch(
        self, i: int, offset: int, ts: int, stamp: Stamp, now: float, old: Stream
    ) -> Sequence[Event]:
        """R3: a newer epoch of a tracked producer retires ``old`` and starts a stream."""
        producer, seq = stamp.producer, stamp.seq
        events: list[Event] = []
        if len(self._streams) >= self.config.max_streams:
            events.extend(self._evict_for_cap(now))
        if self._streams.is_current(old):  # unless the cap just evicted it
            self._streams.retire(old)
        # After a skip (R16) the new epoch may have begun among the deleted records.
        witnessed = not old.is_unresolved()
        old.skip_mark = None
        st = Stream(producer, stamp.epoch, seq, offset, now)
        self._streams.start(st)
        self._ring.attribute(i, st)
        self._counters.streams += 1
        key = self._key(producer, stamp.epoch)
        events.append(EpochStarted(key, old.epoch, seq, offset, now))
        if seq > 0 and witnessed:
            # Head loss: we watched the previous epoch, so this one started while we were
            # reading and its records 0..seq-1 should be here.
            gap = self._book.new_gap(
                key,
                0,
                seq - 1,
                state=GapState.OPEN,
                cause=GapCause.HEAD,
                opened_at=now,
                now=now,
                offset_before=old.high_offset,
                offset_after=offset,
                timestamp_before_ms=self._ring.high_record_ts(old),
                timestamp_after_ms=ts,
            )
            self._book.add(gap, st)
            events.append(GapOpened(gap))
        # After the head gap opened: the reports' failed ranges may cover it (R12).
        events.extend(self._adopt_orphans(st))
        return events

    def _old_epoch(
        self, i: int, offset: int, ts: int, stamp: Stamp, now: float, current: Stream
    ) -> Sequence[Event]:
        """R4: a record of an epoch older than ``current``: fills a retired gap, or a zombie."""
        retired = self._streams.retired.get((stamp.producer, stamp.epoch))
        if retired is not None and retired.aux is not None:
            k = find_range(retired.aux.ranges, stamp.seq)
            if k >= 0:
                self._ring.attribute(i, retired)
                return self._missing_arrived(retired, k, stamp.seq, offset, ts, now)
        # Not attributable to a stream: the ring must not name it on truncation.
        self._ring.attribute(i, None)
        self._counters.zombies += 1
        key = self._key(stamp.producer, stamp.epoch)
        return (ZombieEpoch(key, current.epoch, stamp.seq, offset, now),)

    # --- R5 --------------------------------------------------------------------------

    def _jump_ahead(
        self, st: Stream, seq: int, offset: int, ts: int, now: float
    ) -> Sequence[Event]:
        """R5: open the gap before ``seq`` (``seq > st.high + 1``) and advance ``st``."""
        aux = st.ensure_aux()
        gap = self._book.new_gap(
            self._key(st.producer, st.epoch),
            st.high + 1,
            seq - 1,
            state=GapState.OPEN,
            cause=GapCause.SEQUENCE,
            opened_at=now,
            now=now,
            generation=aux.generation,
            offset_before=st.high_offset,
            offset_after=offset,
            timestamp_before_ms=self._ring.high_record_ts(st),
            timestamp_after_ms=ts,
        )
        st.high = seq
        st.high_offset = offset
        if aux.told:
            return self._open_told(st, gap)  # R12: cut at failed-range boundaries
        self._book.add(gap, st)
        return (GapOpened(gap),)

    # --- R6, R7 ----------------------------------------------------------------------

    def _missing_arrived(
        self, st: Stream, k: int, seq: int, offset: int, ts: int, now: float
    ) -> Sequence[Event]:
        """R6 (late) or R7 (recovered): ``seq`` is inside ``st``'s missing range ``k``."""
        aux = st.aux
        assert aux is not None  # the caller found a range
        gap = self._book.active[aux.ranges[k].gap_id]
        if gap.state is not GapState.OPEN:
            return self._recovered(st, k, seq, now, gap)
        return self._late(st, k, seq, offset, ts, now, gap)

    def _late(
        self, st: Stream, k: int, seq: int, offset: int, ts: int, now: float, gap: Gap
    ) -> Sequence[Event]:
        """R6: an open gap shrinks from either end, heals, or splits in two."""
        aux = st.aux
        assert aux is not None
        self._counters.late += 1
        if gap.first_seq == gap.last_seq:
            take_seq(aux.ranges, k, seq)
            healed = replace(gap, state=GapState.HEALED, count=0, healed_at=now, updated_at=now)
            self._book.close(healed)
            st.drop_aux_if_empty()
            return (GapHealed(healed),)
        if seq == gap.first_seq:
            take_seq(aux.ranges, k, seq)
            shrunk = replace(
                gap,
                first_seq=seq + 1,
                count=gap.count - 1,
                offset_before=offset,
                timestamp_before_ms=ts,
                updated_at=now,
            )
        elif seq == gap.last_seq:
            take_seq(aux.ranges, k, seq)
            shrunk = replace(
                gap,
                last_seq=seq - 1,
                count=gap.count - 1,
                offset_after=offset,
                timestamp_after_ms=ts,
                updated_at=now,
            )
        else:
            left, right = self._book.split(st, k, seq, offset, ts, now, gap)
            return (GapSplit(left, right, seq),)
        self._book.update(shrunk)
        return (GapShrunk(shrunk, seq),)

    def _recovered(self, st: Stream, k: int, seq: int, now: float, gap: Gap) -> Sequence[Event]:
        """R7: a record of a confirmed or truncated gap came back; the loss stays counted."""
        aux = st.aux
        assert aux is not None
        self._counters.recovered += 1
        take_seq(aux.ranges, k, seq)
        recovered = gap.recovered + 1
        if recovered >= gap.count:
            state = GapState.RECOVERED if gap.state is GapState.CONFIRMED else gap.state
            done = replace(gap, recovered=recovered, state=state, updated_at=now)
            self._book.close(done)
            st.drop_aux_if_empty()
            return (GapRecovered(done, seq),)
        updated = replace(gap, recovered=recovered, updated_at=now)
        self._book.update(updated)
        return (GapRecovered(updated, seq),)

    # --- R8 --------------------------------------------------------------------------

    def _reset(
        self, i: int, old: Stream, offset: int, ts: int, now: float, *, seq: int = 0
    ) -> tuple[Event, ...]:
        """R8 (and R16 c): the producer restarted the same epoch; its stream starts a new
        generation, first seen at ``seq``. The old generation's gaps stay (R11 decides
        them) but are no longer watched: nothing that arrives from now on can be told
        apart from the new run."""
        generation = old.generation + 1
        self._forget_stream(old)
        st = Stream(old.producer, old.epoch, seq, offset, now, StreamAux(generation))
        if seq > 0:
            self._streams.set_baseline(st, seq, now)
        self._streams.start(st)
        self._ring.attribute(i, st)
        self._counters.resets += 1
        key = self._key(old.producer, old.epoch)
        return (SequenceReset(key, old.high, generation, offset, now),)

    # --- R9, R10 ---------------------------------------------------------------------

    def _before_baseline(self) -> Sequence[Event]:
        """R9: a record before the baseline of a stream first seen mid-way, while R11 does
        not hold for the first sight: possibly reordered, so counted late."""
        self._counters.late += 1
        return NO_EVENTS

    def _duplicate(self, st: Stream, seq: int, offset: int) -> Sequence[Event]:
        """R10: already seen."""
        self._counters.duplicates += 1
        return (DuplicateRecords(self._key(st.producer, st.epoch), seq, seq, 1, offset),)

    # --- R11: confirmation -----------------------------------------------------------

    def note_read_position(
        self, *, read_offset: int, high_watermark: int, observed_at: float
    ) -> Sequence[Event]:
        """The consumer has read everything below ``read_offset``; the partition's high
        watermark was ``high_watermark`` when observed at ``observed_at``.

        Returns the confirmations this makes possible (evaluated at ``observed_at``).
        """
        self._progress.note(
            read_offset=read_offset, high_watermark=high_watermark, observed_at=observed_at
        )
        return self._confirm(observed_at)

    def tick(self, now: float) -> Sequence[Event]:
        """Run the time-driven rules: confirmation (R11, R12) and idle eviction (R14)."""
        events = list(self._confirm(now))
        self._book.unmark_closed()
        if self._streams.has_baselines():
            self._streams.drop_settled_baselines(lambda since: self._is_settled(since, now))
        if now >= self._next_sweep:
            events.extend(self._evict_idle(now))
            self._next_sweep = now + min(self.config.idle_eviction / 8, 60.0)
        return events or NO_EVENTS

    def _confirm(self, now: float) -> Sequence[Event]:
        """R11: confirm every open gap (and mature every report) for which it now holds;
        a gap that was open at a skip ends ``unknown`` instead (R16)."""
        events: list[Event] = []
        book = self._book
        for gid in [g for g in book.open if self._is_settled(book.active[g].opened_at, now)]:
            if book.was_open_at_skip(gid):
                events.append(GapUnknown(book.close_unknown(book.active[gid], now)))
            else:
                events.append(GapConfirmed(book.confirm(book.active[gid], now)))
        if self._ledger.has_claims():
            events.extend(self._mature_reports(now))
        return events or NO_EVENTS

    def _is_settled(self, since: float, now: float) -> bool:
        """R11 for a fact dated ``since``: grace elapsed and a later watermark was read."""
        return self._progress.is_settled(since, now)

    # --- R12: producer reports -------------------------------------------------------

    def apply_producer_report(self, report: ProducerReport, now: float) -> Sequence[Event]:
        """Take a producer's report (R12); its claims mature in :meth:`tick`. Counted
        ``reports_unmatched`` if it is not about this partition."""
        if report.topic != self.topic or report.partition != self.partition:
            self._counters.reports_unmatched += 1
            return NO_EVENTS
        try:
            validate_report(report)
        except ReportDecodeError:
            self._counters.reports_unmatched += 1
            return NO_EVENTS
        st = self._current.get(report.producer)
        if st is None or st.epoch != report.epoch:
            st = self._streams.retired.get((report.producer, report.epoch))
        if st is None:
            # Not seen yet (the monitor may be behind): hold it until the stream appears
            # or the claim matures.
            self._ledger.hold_orphan(report, now)
            return NO_EVENTS
        events = self._queue_report(st, report, now)
        return tuple(events) if events else NO_EVENTS

    def _adopt_orphans(self, st: Stream) -> list[Event]:
        """Apply the reports that arrived before ``st`` did; returns the splits of gaps
        they tell in part."""
        events: list[Event] = []
        for report, at in self._ledger.adopt(st):
            events.extend(self._queue_report(st, report, at))
        return events

    def _queue_report(self, st: Stream, report: ProducerReport, at: float) -> list[Event]:
        """Tell the gaps the report's failed ranges cover, then hold its claim on ``st``."""
        aux = st.ensure_aux()
        events = self._tell_gaps(st, report.failed, at) if report.failed and aux.ranges else []
        self._ledger.queue(st, report, at)
        return events

    def _tell_gaps(self, st: Stream, failed: tuple[tuple[int, int], ...], at: float) -> list[Event]:
        """Gaps already open or confirmed over failed sequences: the producer knew of
        those. A gap the ranges cover in full is marked ``producer_told``; one they cover
        in part is cut into told and silent pieces (:meth:`_divide_gap`)."""
        aux = st.aux
        assert aux is not None
        book = self._book
        spans = sorted(failed)
        hit = dict.fromkeys(
            r.gap_id for r in aux.ranges if any(lo <= r.last and r.first <= hi for lo, hi in spans)
        )
        events: list[Event] = []
        for gid in hit:
            gap = book.active.get(gid)
            if gap is None or gap.producer_told:
                continue  # a told gap is told in full: every gap is cut when it opens
            runs = split_told(spans, gap.first_seq, gap.last_seq)
            if len(runs) == 1 or gap.count != gap.last_seq - gap.first_seq + 1:
                told = replace(gap, producer_told=True, updated_at=max(at, gap.updated_at))
                book.update(told)
                # An event, so /gaps, the gap log and a firing alert learn it now, not at
                # the gap's next state change.
                events.append(GapTold(told))
                events.extend(self._join_told_pieces(st, told, at))
            else:
                events.extend(self._divide_gap(st, gap, runs, at))
        return events

    def _join_told_pieces(self, st: Stream, gap: Gap, at: float) -> list[Event]:
        """The open, now wholly told ``gap`` and an adjacent open told piece of the same
        cut become one gap again (``GapJoined``): they were apart only because the
        producer's failed ranges came in several reports, and one run of sends the
        application saw fail is one gap, as it is when every report came first. A
        confirmed piece is never joined: it was counted (and may have paged) already."""
        events: list[Event] = []
        left = self._told_piece_at(st, gap.first_seq - 1, gap)
        if left is not None:
            joined = self._book.join(left, gap, st, at)
            events.append(GapJoined(joined, gap))
            gap = joined
        right = self._told_piece_at(st, gap.last_seq + 1, gap)
        if right is not None:
            events.append(GapJoined(self._book.join(gap, right, st, at), right))
        return events

    def _told_piece_at(self, st: Stream, seq: int, gap: Gap) -> Gap | None:
        """The active gap missing ``seq`` if it and ``gap`` are open, told pieces of one
        cut: same stream generation and cause, and the same bounding records (nothing was
        read between them)."""
        if gap.state is not GapState.OPEN or not gap.producer_told or st.aux is None:
            return None
        for r in st.aux.ranges:
            if r.first <= seq <= r.last:
                other = self._book.active.get(r.gap_id)
                if (
                    other is not None
                    and other.state is GapState.OPEN
                    and other.producer_told
                    and other.generation == gap.generation
                    and other.cause is gap.cause
                    and other.offset_before == gap.offset_before
                    and other.offset_after == gap.offset_after
                ):
                    return other
                return None
        return None

    def _divide_gap(
        self, st: Stream, gap: Gap, runs: list[tuple[int, int, bool]], at: float
    ) -> list[Event]:
        """Cut the active ``gap`` into the told / silent ``runs`` of its sequences.

        The first piece keeps the id, the others get the id of their own first sequence
        (as a R6 split does), so ids stay stable across restarts. Every piece keeps the
        gap's state, times and bounding records (nothing was read between the pieces); a
        confirmed piece's ``recovered`` is what came back of its own sequences, and a
        piece whose every record came back is ``recovered`` (R7). One ``GapSplit``
        (``seq`` ``None``) per boundary.
        """
        book = self._book
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
                # A report held for a stream not yet read is older than the gap it cuts;
                # the fleet view keeps the newest version of a gap id, so the time never
                # goes back.
                updated_at=max(at, gap.updated_at),
            )
            if gap.state is not GapState.OPEN:
                left = sum(min(b, hi) - max(a, lo) + 1 for a, b in missing if a <= hi and lo <= b)
                piece = replace(piece, recovered=count - left)
                if not left and gap.state is GapState.CONFIRMED:
                    piece = replace(piece, state=GapState.RECOVERED)
            pieces.append(piece)
        book.divide(gap, pieces, st)
        events: list[Event] = [
            GapSplit(pieces[i], pieces[i + 1], None) for i in range(len(pieces) - 1)
        ]
        # The outer pieces may meet told pieces of an earlier cut of the same gap.
        for piece in (pieces[0], pieces[-1]):
            current = book.active.get(piece.id)
            if current is not None:
                events.extend(self._join_told_pieces(st, current, at))
        return events

    def _open_told(self, st: Stream, gap: Gap) -> tuple[Event, ...]:
        """Open ``gap`` (R5) cut at the boundaries of the failed ranges already reported
        for ``st``: one ``GapOpened`` per piece, each entirely ``producer_told`` or not."""
        aux = st.aux
        assert aux is not None
        book = self._book
        events: list[Event] = []
        for i, (lo, hi, told) in enumerate(split_told(aux.told, gap.first_seq, gap.last_seq)):
            gid = gap.id if i == 0 else book.new_id(gap.key, lo, gap.generation, gap.cause)
            piece = replace(
                gap, id=gid, first_seq=lo, last_seq=hi, count=hi - lo + 1, producer_told=told
            )
            book.add(piece, st)
            events.append(GapOpened(piece))
        return tuple(events)

    def _mature_reports(self, now: float) -> list[Event]:
        """Resolve every held claim for which R11 now holds."""
        events: list[Event] = []
        claims = self._ledger.matured(
            now, self.config.idle_eviction, lambda since: self._is_settled(since, now)
        )
        for claim in claims:
            if isinstance(claim, OrphanClaim):
                events.extend(self._orphan_matured(claim.report, claim.at, now))
            else:
                events.extend(self._claim_matured(claim, now))
        return events

    def _orphan_matured(self, report: ProducerReport, at: float, now: float) -> list[Event]:
        """A report about a stream never read here: a claim only if an older epoch of the
        producer was watched here (else its records may predate the monitor's start)."""
        current = self._current.get(report.producer)
        witnessed_older = (current is not None and current.epoch < report.epoch) or any(
            producer == report.producer and epoch < report.epoch
            for producer, epoch in self._streams.retired
        )
        if not witnessed_older or report.highest_acked is None:
            self._counters.reports_unmatched += 1
            self._ledger.hold_told(report, at)
            return []
        if current is not None and current.epoch < report.epoch and current.is_unresolved():
            # R16: the new epoch may have begun among offsets deleted before they were read.
            acked = report.highest_acked
            self._counters.unknown_fate += acked + 1
            key = self._key(report.producer, report.epoch)
            return [UnknownFate(key, 0, acked, acked + 1, now)]
        # We watched an older epoch of this producer here, so this epoch's acknowledged
        # records should have been read: all of them are missing.
        return [
            self._confirmed_gap(
                None, report.producer, report.epoch, lo, hi, GapCause.TAIL, at, now, told=told
            )
            for lo, hi, told in split_told(report.failed, 0, report.highest_acked)
        ]

    def _claim_matured(self, claim: StreamClaim, now: float) -> list[Event]:
        """A pending claim on a stream: acknowledged sequences above ``high`` are a tail
        gap; for a final report, unacknowledged ones are unknown fate or, when reported
        failed, confirmed ``producer`` gaps."""
        st, pending = claim.stream, claim.pending
        events: list[Event] = []
        aux = st.aux
        assert aux is not None
        above = st.high  # the final part starts after the acknowledged part
        if pending.acked > st.high and st.is_unresolved():
            # R16: nothing of this stream was read since retention deleted unread offsets;
            # its acknowledged records may have been among them: not provably lost.
            events.append(self._unknown_fate(st, st.high + 1, pending.acked, now))
            above = pending.acked
        elif pending.acked > st.high:
            first, last = st.high + 1, pending.acked
            # Cut at failed-range boundaries: acknowledged-but-absent records are silent.
            for lo, hi, told in split_told(aux.told, first, last):
                events.append(
                    self._confirmed_gap(
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
            for lo, hi, told in split_told(aux.told, above + 1, pending.assigned):
                if told:
                    events.append(
                        self._confirmed_gap(
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
                    events.append(self._unknown_fate(st, lo, hi, now))
        aux.told = [(first, last) for first, last in aux.told if last > st.high]
        return events

    def _unknown_fate(self, st: Stream, first: int, last: int, now: float) -> Event:
        self._counters.unknown_fate += last - first + 1
        return UnknownFate(self._key(st.producer, st.epoch), first, last, last - first + 1, now)

    def _confirmed_gap(
        self,
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
        gap = self._book.new_gap(
            self._key(producer, epoch),
            first,
            last,
            state=GapState.CONFIRMED,
            cause=cause,
            opened_at=opened_at,
            now=now,
            generation=0 if st is None else st.generation,
            offset_before=None if st is None else st.high_offset,
            timestamp_before_ms=None if st is None else self._ring.high_record_ts(st),
            producer_told=told,
        )
        self._book.add(gap, st, watch=st is not None)
        return GapConfirmed(gap)

    # --- R13: truncation and divergence ----------------------------------------------

    def log_truncated(self, new_end_offset: int, now: float) -> Sequence[Event]:
        """The log now ends at ``new_end_offset``, below offsets already read (R13)."""
        return self._truncate(new_end_offset, now)

    def log_diverged_at(
        self, offset: int, now: float, *, beyond_ring: bool = False
    ) -> Sequence[Event]:
        """Records read at and after ``offset`` are no longer in the log (R13)."""
        return self._truncate(offset, now, beyond_ring=beyond_ring)

    def verify_from(self) -> int | None:
        """The oldest offset whose record the ring can verify (``None``: ring empty)."""
        return self._ring.verify_from()

    def newest_read(self, before: int | None = None) -> tuple[int, Stamp] | None:
        """The newest (offset, stamp) the ring holds below ``before``: a probe (R13)."""
        return self._ring.newest_read(before)

    def find_divergence(
        self, log: Iterable[tuple[int, Stamp | None]], *, log_start: int, log_end: int
    ) -> tuple[int, bool] | None:
        """First offset where the re-read ``log`` differs from the ring, with
        ``beyond_ring``; ``None`` if it agrees (R13, see :meth:`Ring.find_divergence`)."""
        return self._ring.find_divergence(log, log_start=log_start, log_end=log_end)

    def _truncate(
        self, new_end: int, now: float, *, beyond_ring: bool = False
    ) -> tuple[Event, ...]:
        """R13: records read at offsets ``>= new_end`` are gone. The ring names their
        sequences: a sequence a surviving entry also holds (read twice) is still in the
        log; every other one joins a ``truncated`` gap (one per run per stream), no longer
        "seen", so a re-sent copy is recovered, not a duplicate. Truncated offsets older
        than the ring are ``unaccounted``. The ring is rewound to ``new_end``.

        ``beyond_ring``: the caller found the log differing from the ring's oldest entry,
        so the divergence may be deeper than the ring (counted ``truncations_beyond_ring``).
        """
        ring = self._ring
        j = ring.first_at_or_above(new_end)
        if j == ring.n:
            return NO_EVENTS  # nothing read at or above the new end: not a truncation of ours
        previous_end = ring.end_offset()
        unaccounted = ring.unaccounted_below(j, new_end)
        tracked = {id(s) for s in self._streams}
        gaps: list[Gap] = []
        for st, lost in ring.gone_sequences(j).items():
            runs = _runs(sorted(s for s in lost if find_range(st.ranges, s) < 0))
            for first, last in runs:
                gap = self._book.new_gap(
                    self._key(st.producer, st.epoch),
                    first,
                    last,
                    state=GapState.TRUNCATED,
                    cause=GapCause.TRUNCATION,
                    opened_at=now,
                    now=now,
                    generation=st.generation,
                )
                self._book.add(gap, st, watch=id(st) in tracked)
                gaps.append(gap)
        count = sum(g.count for g in gaps)
        self._counters.truncated += count
        self._counters.truncated_unaccounted += unaccounted
        self._counters.truncations_beyond_ring += beyond_ring
        ring.rewind(j)
        return (
            RecordsTruncated(
                self.topic,
                self.partition,
                new_end,
                previous_end,
                tuple(gaps),
                count,
                unaccounted,
                now,
                beyond_ring,
            ),
        )

    # --- R14: eviction ---------------------------------------------------------------

    def _evict_idle(self, now: float) -> list[Event]:
        """R14: forget streams silent for ``idle_eviction`` that have nothing pending (an
        open gap must still be decided; a claim must still mature)."""
        gone = self._streams.evict_idle(now - self.config.idle_eviction, self._is_busy)
        return [self._evicted(st, "idle", now) for st in gone]

    def _evict_for_cap(self, now: float) -> list[Event]:
        """R14: make room below ``max_streams``: least recently seen first, retired
        epochs first."""
        gone = self._streams.evict_for_cap(self.config.max_streams)
        return [self._evicted(st, "cap", now) for st in gone]

    def _is_busy(self, st: Stream) -> bool:
        open_ids = self._book.open
        return self._ledger.is_pending(st) or any(r.gap_id in open_ids for r in st.ranges)

    def _evicted(self, st: Stream, reason: str, now: float) -> Event:
        self._forget_stream(st)
        self._counters.evictions += 1
        self._counters.streams -= 1
        return StreamEvicted(self._key(st.producer, st.epoch), reason, now)

    def _forget_stream(self, st: Stream) -> None:
        """Everything about ``st`` beyond its place in the stream table goes, in one
        place (a reset, R8, and an eviction, R14): its watched gaps close, its open gaps
        stay open unwatched (R11 decides them), its claims and marks are dropped."""
        self._book.detach_stream(st)
        self._ledger.forget(st)
        self._streams.forget(st)

    # --- R15 -------------------------------------------------------------------------

    def observe_unstamped(self) -> None:
        """Count a record without gapwatch headers (R15)."""
        self._counters.unstamped += 1

    def observe_malformed(self, reason: str) -> None:
        """Count a record whose headers were damaged (R15); the caller logs ``reason``."""
        self._counters.malformed += 1

    # --- R16: skips ------------------------------------------------------------------

    def records_skipped(self, first_offset: int, last_offset: int, now: float) -> Sequence[Event]:
        """Retention deleted ``first_offset..last_offset`` before they were read (R16).

        Every current stream is marked (see :meth:`_after_skip`), and every gap open now
        may have had its late records among the deleted offsets: it still heals or shrinks
        with records that do arrive, but when R11 holds it ends ``unknown`` (counted
        ``gaps_unknown``, not ``missing``). Gaps confirmed before the skip stay confirmed.
        Returns the ``RecordsSkipped`` event.
        """
        if last_offset < first_offset:
            return NO_EVENTS
        self._streams.mark_skip(last_offset)
        self._book.mark_open_at_skip()
        count = last_offset - first_offset + 1
        return (RecordsSkipped(self.topic, self.partition, first_offset, last_offset, count, now),)

    def _after_skip(
        self, i: int, st: Stream, seq: int, offset: int, ts: int, now: float
    ) -> Sequence[Event] | None:
        """R16: the next record of a stream marked by a skip; ``None``: R5-R10 decide.

        Nobody can tell what the deleted offsets held, so what the tracker expected next
        of the stream no longer holds. A record simply in order ends the mark (nothing
        of the stream was deleted; R1 took it). Otherwise the record is:

        a. inside one of the stream's missing ranges: R6/R7 as usual (the mark stays);
        b. ahead of ``high + 1``: a new baseline, no gap (as first sight, R2; earlier
           sequences arriving afterwards are ``late`` under R9 until R11 holds for it);
        c. at or below ``high`` with a record timestamp strictly newer than the stream's
           newest record: the producer restarted among the deleted records (R8's
           tie-break, for any sequence): a new generation with this baseline;
        d. otherwise R8-R10 as usual (a retried copy keeps its original timestamp: a
           duplicate), and the mark stays.

        While a stream is still marked, a new epoch of it is not a witnessed restart (no
        head gap, R3), and acknowledged sequences a report claims above ``high`` are
        ``UnknownFate`` rather than a tail gap (R12): they may have been deleted unread.
        """
        mark = st.skip_mark
        assert mark is not None
        st.skip_mark = None
        if st.high_offset > mark:
            return None  # advanced in order since the skip
        aux = st.aux
        if aux is not None and aux.ranges and find_range(aux.ranges, seq) >= 0:
            st.skip_mark = mark  # (a)
            return None
        if seq > st.high:  # (b)
            st.high = seq
            st.high_offset = offset
            self._streams.set_baseline(st, seq, now)
            return NO_EVENTS
        if ts > self._ring.reset_reference_ts(st):  # (c)
            return self._reset(i, st, offset, ts, now, seq=seq)
        st.skip_mark = mark  # (d)
        return None

    # --- read access for the monitor -------------------------------------------------

    @property
    def counters(self) -> TrackerCounters:
        """The partition's counters (live object; read, do not write)."""
        c = self._counters
        c.records = self._ring.records()
        return c

    def gap(self, gap_id: str) -> Gap | None:
        """One gap by id (active or recently closed)."""
        return self._book.get(gap_id)

    def gaps(self) -> list[Gap]:
        """Active gaps (open, confirmed, truncated) and the bounded closed history."""
        return list(self._book.all())

    def open_gaps(self) -> list[Gap]:
        """Gaps still open."""
        return [self._book.active[g] for g in self._book.open]

    def streams(self) -> list[StreamInfo]:
        """What is tracked, current streams first, then retired epochs (built on request,
        never kept up to date on the record path)."""
        out = []
        open_now = self._book.open
        for st in self._streams:
            ranges = st.ranges
            open_ids = tuple(dict.fromkeys(r.gap_id for r in ranges if r.gap_id in open_now))
            last_ts = self._ring.high_record_ts(st)
            out.append(
                StreamInfo(
                    key=self._key(st.producer, st.epoch),
                    generation=st.generation,
                    base_seq=0 if st.baseline is None else st.baseline[0],
                    high_seq=st.high,
                    last_offset=st.high_offset,
                    # Kafka's own "no timestamp" value, so the API field stays an integer.
                    last_timestamp_ms=-1 if last_ts is None else last_ts,
                    last_seen=st.last_seen,
                    missing=sum(r.last - r.first + 1 for r in ranges),
                    open_gaps=open_ids,
                )
            )
        return out

    def _key(self, producer: str, epoch: int) -> StreamKey:
        return StreamKey(self.topic, self.partition, producer, epoch)

    # --- snapshots -------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """This partition's whole decision state as compact, versioned bytes."""
        return encode(self._state())

    @classmethod
    def restore(
        cls, data: bytes, *, topic: str, partition: int, config: TrackerConfig | None = None
    ) -> PartitionTracker:
        """A tracker from :meth:`snapshot` bytes; raises :class:`~gapwatch.errors.SnapshotError`
        (and nothing else) for damaged, foreign or unknown-version data."""
        tracker = cls(topic, partition, config=config)
        decode(tracker._state(), data)
        return tracker

    def _state(self) -> TrackerState:
        return TrackerState(
            topic=self.topic,
            partition=self.partition,
            counters=self._counters,
            streams=self._streams,
            book=self._book,
            ledger=self._ledger,
            progress=self._progress,
            ring=self._ring,
        )


def _runs(values: list[int]) -> list[tuple[int, int]]:
    # Sorted values as runs of consecutive ones.
    runs: list[tuple[int, int]] = []
    for v in values:
        if runs and runs[-1][1] + 1 == v:
            runs[-1] = (runs[-1][0], v)
        else:
            runs.append((v, v))
    return runs
