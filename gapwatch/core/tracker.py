"""The sequence tracker of one partition: facts and ``now`` in, events out, no I/O.

Decision rules, in the order they are tried (each is one named function, and one test in
``tests/unit/test_tracker_rules.py`` named after it). "Stream" is one (producer, epoch) on
this partition; ``high`` is the highest sequence seen on it. This module holds R1, R10,
R15 and the order of R2-R10 (``_decide``); the other rules are functions of the tracker in
modules of their own: R2-R4 ``epochs.py``, R5 ``jump_ahead.py``, R6-R7 ``late.py``, R8
``reset.py``, R9 ``baseline.py``, R11 ``confirmation.py``, R12 ``reports.py``, R13
``truncation.py`` and ``divergence.py``, R14 ``housekeeping.py``, R16 ``skip.py``.

For every stamped record (:meth:`PartitionTracker.observe`):

R1  in_order      -- same epoch and ``seq == high + 1``: advance. The hot path: no allocation.
R2  first_sight   -- unknown producer: ``seq`` is the baseline, no gap (retention may have
                     deleted its earlier records; the monitor may have started late).
R3  new_epoch     -- a newer epoch of a tracked producer ends the old stream (kept, retired,
                     for its gaps and reports). Because the tracker witnessed the previous
                     epoch, a new epoch first seen at ``seq > 0`` opens a head gap ``0..seq-1``.
R4  old_epoch     -- a record of an older epoch fills a gap of that retired epoch if it can,
                     else it is flagged ``ZombieEpoch`` and changes nothing.
R5  jump_ahead    -- ``seq > high + 1``: open a gap ``high+1..seq-1`` at once, bounded by the
                     records just before (``high``) and just after (this one).
R6  late          -- ``seq`` inside an open gap: shrink, split (the right piece gets the id
                     of its own first sequence) or heal it. Counted ``late``, never lost.
R7  recovered     -- ``seq`` inside a confirmed or truncated gap: counted ``recovered`` on
                     the gap; the loss count is not rewritten. A confirmed gap whose every
                     record came back becomes ``recovered``.
R8  reset         -- ``seq == 0`` not inside a gap, with a record timestamp strictly newer
                     than the stream's newest record: the producer restarted the same epoch
                     (a new generation), one ``SequenceReset``. Tie-break: a Kafka retry
                     resends a batch with its original CreateTime, so a duplicated record 0
                     is never newer than records created after it and falls to R10. (If
                     the newest record has left the ring, the oldest timestamp in the ring
                     stands in for it: it is at least as new, up to producer clock skew.)
R9  before_base   -- ``seq`` below the baseline of a stream first seen mid-way, while R11
                     does not yet hold for its first sight: possibly a reordered record,
                     counted ``late``. Once R11 holds, no reordered record can still
                     arrive, so such a record is a duplicate (R10) and the baseline is
                     forgotten.
R10 duplicate     -- anything else (``seq <= high``, already seen): counted, one event.

For the other facts:

R11 confirmation  -- an open gap is confirmed lost, with its exact count, only when
                     ``now >= opened_at + grace`` and the consumer has read up to a high
                     watermark observed at ``>= opened_at + grace`` (:meth:`caught_up`).
R12 producer_report -- a report's claims mature under the same rule from the time it was
                     applied: acknowledged sequences above ``high`` become a confirmed tail
                     gap; for a final report, unacknowledged ones become ``UnknownFate`` and
                     failed ones confirmed ``producer_told`` gaps; failed ranges mark the
                     gaps that cover them ``producer_told``, cutting a gap they cover only in
                     part (when it opens, or later: ``GapSplit`` with ``seq`` None) so that
                     every gap is entirely told or entirely silent.
R13 truncation    -- the log end moved below offsets already read (:meth:`log_truncated`),
                     or the log diverged from what was read (:meth:`find_divergence` on
                     records re-read after a leader change, then :meth:`log_diverged_at`):
                     the ring names the sequences that are gone (``truncated`` gaps, no
                     longer "seen", so a re-sent copy is recovered, not a duplicate) and
                     is rewound. Bound: ``ring_size`` records; offsets truncated below the
                     ring are ``unaccounted``, a divergence at the ring's oldest record is
                     ``beyond_ring`` (depth unknown).
R14 eviction      -- streams idle for ``idle_eviction`` with no open gap are forgotten; at
                     ``max_streams`` the least recently seen are. Both counted and reported.
R15 untrusted     -- unstamped and malformed records are counted, nothing else.
R16 skipped       -- retention deleted offsets before they were read
                     (:meth:`records_skipped`): each stream's next record that is not in
                     order is a new baseline (no gap; a restart if it goes back with a
                     newer timestamp; a duplicate if it goes back with an older one), and
                     gaps open at the skip become ``unknown``, not lost, when R11 holds
                     (their records may have been deleted unread). See ``skip.py``.

Public API (all methods are synchronous and cheap; none reads the clock)::

    t = PartitionTracker("orders", 3, config=TrackerConfig(grace_period=120))
    t.observe(offset, timestamp_ms, stamp, now) -> Sequence[Event]   # per stamped record
    t.observe_fields(offset, timestamp_ms, producer, epoch, seq, now)  # same, unpacked
    t.observe_unstamped(); t.observe_malformed(reason)               # R15
    t.caught_up(read_offset=, high_watermark=, observed_at=) -> Sequence[Event]
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

from gapwatch.core.baseline import before_base, forget_settled, is_before_base
from gapwatch.core.config import TrackerConfig
from gapwatch.core.confirmation import caught_up, confirm
from gapwatch.core.counters import TrackerCounters
from gapwatch.core.divergence import find_divergence, newest_read, verify_from
from gapwatch.core.epochs import first_sight, new_epoch, old_epoch
from gapwatch.core.gapbook import GapBook
from gapwatch.core.housekeeping import sweep_idle
from gapwatch.core.jump_ahead import jump_ahead
from gapwatch.core.late import fill
from gapwatch.core.model import (
    NO_EVENTS,
    DuplicateRecords,
    Event,
    Gap,
    ProducerReport,
    StreamInfo,
    StreamKey,
)
from gapwatch.core.reports import apply_report
from gapwatch.core.reset import reset
from gapwatch.core.ring import reset_reference_ts
from gapwatch.core.skip import after_skip, skip
from gapwatch.core.snapshot import decode, encode
from gapwatch.core.stream import Stream, find_range
from gapwatch.core.streaminfo import stream_infos
from gapwatch.core.truncation import truncate
from gapwatch.core.wire import Stamp


class PartitionTracker:
    """Decides, record by record, what one partition's stamped records mean.

    See the module docstring for the rules and the API. Not thread-safe: one owner.
    """

    __slots__ = (
        "_book",
        "_caught_up_at",
        "_counters",
        "_doubtful",
        "_grace",
        "_hwm_pending",
        "_mask",
        "_n",
        "_next_sweep",
        "_orphans",
        "_rebase",
        "_records_base",
        "_reporting",
        "_retired",
        "_ring_floor",
        "_ring_offsets",
        "_ring_seqs",
        "_ring_streams",
        "_ring_ts",
        "_streams",
        "_told_orphans",
        "_young",
        "config",
        "partition",
        "topic",
    )

    def __init__(self, topic: str, partition: int, *, config: TrackerConfig | None = None) -> None:
        self.topic = topic
        self.partition = partition
        self.config = config = config if config is not None else TrackerConfig()
        self._grace = float(config.grace_period)
        self._counters = TrackerCounters()
        self._book = GapBook(
            self._counters, max_tracked=config.max_tracked_gaps, max_closed=config.max_closed_gaps
        )
        self._streams: dict[str, Stream] = {}
        self._retired: dict[tuple[str, int], Stream] = {}
        self._reporting: dict[Stream, None] = {}
        self._orphans: dict[tuple[str, int], tuple[float, ProducerReport]] = {}
        # Failed ranges of orphan reports that matured with no claim to make: kept (until
        # idle_eviction) for the stream's head gap, should the stream appear (R12).
        self._told_orphans: dict[tuple[str, int], tuple[float, ProducerReport]] = {}
        self._caught_up_at = float("-inf")
        self._hwm_pending: list[tuple[int, float]] = []
        self._next_sweep = float("-inf")
        # The truncation ring: preallocated parallel arrays written by index
        # ``_n & _mask``; ``_n`` counts ring writes (it is rewound by a truncation).
        size = config.ring_size
        self._mask = size - 1
        self._n = 0
        self._records_base = 0
        self._ring_floor = 0
        # Lists, not array.array: a list store is a pointer write, while an array store
        # converts the int (measured: 0.25 us more per record for four columns). The price
        # is that the ring keeps its ints alive (see docs/tracker.md for the bytes).
        self._ring_offsets: list[int] = [0] * size
        self._ring_seqs: list[int] = [0] * size
        self._ring_ts: list[int] = [0] * size
        # Baselines of streams first seen mid-way, while R9 needs them: stream -> (base,
        # first seen at). Streams seen from sequence 0 never need one.
        self._young: dict[Stream, tuple[int, float]] = {}
        # R16: streams marked by a skip (-> the skip's last offset), and ids of gaps that
        # were open at a skip (they end ``unknown`` instead of confirmed).
        self._rebase: dict[Stream, int] = {}
        self._doubtful: set[str] = set()
        self._ring_streams: list[Stream | None] = [None] * size

    # --- R1: the hot path ------------------------------------------------------------

    def observe(self, offset: int, timestamp_ms: int, stamp: Stamp, now: float) -> Sequence[Event]:
        """Decide what one stamped record means (R1-R10). ``stamp`` from ``parse_stamp``."""
        st = self._streams.get(stamp.producer)
        seq = stamp.seq
        n = self._n
        i = n & self._mask
        self._ring_offsets[i] = offset
        self._ring_seqs[i] = seq
        self._ring_ts[i] = timestamp_ms
        self._ring_streams[i] = st
        self._n = n + 1
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
        st = self._streams.get(producer)
        n = self._n
        i = n & self._mask
        self._ring_offsets[i] = offset
        self._ring_seqs[i] = seq
        self._ring_ts[i] = timestamp_ms
        self._ring_streams[i] = st
        self._n = n + 1
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
        seq = stamp.seq
        if st is None:
            return first_sight(self, i, offset, ts, stamp, now)
        if stamp.epoch > st.epoch:
            return new_epoch(self, i, offset, ts, stamp, now, st)
        if stamp.epoch < st.epoch:
            return old_epoch(self, i, offset, ts, stamp, now, st)
        st.last_seen = now
        if self._rebase and st in self._rebase:
            decided = after_skip(self, i, st, seq, offset, ts, now)
            if decided is not None:
                return decided
        if seq > st.high:
            return jump_ahead(self, st, seq, offset, ts, now)
        aux = st.aux
        if aux is not None and aux.ranges:
            k = find_range(aux.ranges, seq)
            if k >= 0:
                return fill(self, st, k, seq, offset, ts, now)
        if seq == 0 and ts > reset_reference_ts(self, st):
            return reset(self, i, st, offset, ts, now)
        if self._young and is_before_base(self, st, seq, now):
            return before_base(self)
        return self._duplicate(st, seq, offset)

    # --- R10 -------------------------------------------------------------------------

    def _duplicate(self, st: Stream, seq: int, offset: int) -> Sequence[Event]:
        self._counters.duplicates += 1
        return (DuplicateRecords(self._key(st.producer, st.epoch), seq, seq, 1, offset),)

    # --- R15 -------------------------------------------------------------------------

    def observe_unstamped(self) -> None:
        """Count a record without gapwatch headers (R15)."""
        self._counters.unstamped += 1

    def observe_malformed(self, reason: str) -> None:
        """Count a record whose headers were damaged (R15); the caller logs ``reason``."""
        self._counters.malformed += 1

    # --- R11: confirmation facts -----------------------------------------------------

    def caught_up(
        self, *, read_offset: int, high_watermark: int, observed_at: float
    ) -> Sequence[Event]:
        """The consumer has read everything below ``read_offset``; the partition's high
        watermark was ``high_watermark`` when observed at ``observed_at``.

        Returns the confirmations this makes possible (evaluated at ``observed_at``).
        """
        return caught_up(
            self, read_offset=read_offset, high_watermark=high_watermark, observed_at=observed_at
        )

    def tick(self, now: float) -> Sequence[Event]:
        """Run the time-driven rules: confirmation (R11, R12) and idle eviction (R14)."""
        events = list(confirm(self, now))
        if self._doubtful:
            self._doubtful &= self._book.open.keys()
        if self._young:
            forget_settled(self, now)  # R9
        if now >= self._next_sweep:
            events.extend(sweep_idle(self, now))
            self._next_sweep = now + min(self.config.idle_eviction / 8, 60.0)
        return events or NO_EVENTS

    def _is_settled(self, since: float, now: float) -> bool:
        """R11 for a fact dated ``since``: grace elapsed and a later watermark was read."""
        deadline = since + self._grace
        return deadline <= now and deadline <= self._caught_up_at

    # --- R12, R13, R16 ---------------------------------------------------------------

    def apply_producer_report(self, report: ProducerReport, now: float) -> Sequence[Event]:
        """Take a producer's report (R12); its claims mature in :meth:`tick`."""
        return apply_report(self, report, now)

    def log_truncated(self, new_end_offset: int, now: float) -> Sequence[Event]:
        """The log now ends at ``new_end_offset``, below offsets already read (R13)."""
        return truncate(self, new_end_offset, now)

    def verify_from(self) -> int | None:
        """The oldest offset whose record the ring can verify (``None``: ring empty)."""
        return verify_from(self)

    def newest_read(self, before: int | None = None) -> tuple[int, Stamp] | None:
        """The newest (offset, stamp) the ring holds below ``before``: a probe (R13)."""
        return newest_read(self, before)

    def find_divergence(
        self, log: Iterable[tuple[int, Stamp | None]], *, log_start: int, log_end: int
    ) -> tuple[int, bool] | None:
        """First offset where the re-read ``log`` differs from the ring, with
        ``beyond_ring``; ``None`` if it agrees (R13, see ``divergence.py``)."""
        return find_divergence(self, log, log_start=log_start, log_end=log_end)

    def log_diverged_at(
        self, offset: int, now: float, *, beyond_ring: bool = False
    ) -> Sequence[Event]:
        """Records read at and after ``offset`` are no longer in the log (R13)."""
        return truncate(self, offset, now, beyond_ring=beyond_ring)

    def records_skipped(self, first_offset: int, last_offset: int, now: float) -> Sequence[Event]:
        """Retention deleted ``first_offset..last_offset`` before they were read (R16).

        Returns the ``RecordsSkipped`` event.
        """
        return skip(self, first_offset, last_offset, now)

    # --- read access for the monitor -------------------------------------------------

    @property
    def counters(self) -> TrackerCounters:
        """The partition's counters (live object; read, do not write)."""
        c = self._counters
        c.records = self._n + self._records_base
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
        """What is tracked, current streams first, then retired epochs."""
        return stream_infos(self)

    def ring_start(self) -> int:
        """Index of the oldest valid ring entry (entries ``ring_start()..n-1`` are valid)."""
        return max(self._ring_floor, self._n - self._mask - 1)

    def _key(self, producer: str, epoch: int) -> StreamKey:
        return StreamKey(self.topic, self.partition, producer, epoch)

    # --- snapshots -------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """This partition's whole decision state as compact, versioned bytes."""
        return encode(self)

    @classmethod
    def restore(
        cls, data: bytes, *, topic: str, partition: int, config: TrackerConfig | None = None
    ) -> PartitionTracker:
        """A tracker from :meth:`snapshot` bytes; raises :class:`~gapwatch.errors.SnapshotError`
        (and nothing else) for damaged, foreign or unknown-version data."""
        tracker = cls(topic, partition, config=config)
        decode(tracker, data)
        return tracker
