"""One test (or a few) per numbered decision rule of gapwatch.core.tracker, named after it."""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tracker_support import PARTITION, TOPIC, Feed

from gapwatch.core.config import TrackerConfig
from gapwatch.core.events import (
    NO_EVENTS,
    DuplicateRecords,
    EpochStarted,
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
from gapwatch.core.model import GapCause, GapState, ProducerReport, StreamKey, gap_id
from gapwatch.core.ring import shuffle_bytes, unshuffle_bytes
from gapwatch.core.tracker import PartitionTracker
from gapwatch.core.wire import Stamp
from gapwatch.errors import SnapshotError, TrackerConfigError


class TestR1InOrder:
    def test_r1_in_order_advances_without_events_or_allocation(self) -> None:
        """In-order records return the one shared empty tuple and count as records."""
        feed = Feed()
        feed.record("p", 1, 0)
        results = [feed.record("p", 1, s) for s in range(1, 50)]
        assert all(r is NO_EVENTS for r in results)
        c = feed.tracker.counters
        assert (c.records, c.duplicates, c.late, c.open_gaps) == (50, 0, 0, 0)
        assert feed.tracker.streams()[0].high_seq == 49


class TestR2FirstSight:
    def test_r2_first_sight_is_a_baseline_not_a_gap(self) -> None:
        """A producer first seen at sequence 1000 opens no gap (retention, late start)."""
        feed = Feed()
        assert feed.record("p", 7, 1000) is NO_EVENTS
        feed.run("p", 7, range(1001, 1005))
        feed.settle()
        assert feed.tracker.gaps() == []
        assert feed.tracker.counters.streams == 1
        assert feed.tracker.streams()[0].base_seq == 1000


class TestR3NewEpoch:
    def test_r3_new_epoch_at_zero_ends_the_old_stream_without_a_gap(self) -> None:
        """A restart (epoch bump) starting at 0 is clean: one EpochStarted, no gap."""
        feed = Feed()
        feed.run("p", 1, range(10))
        feed.run("p", 2, range(5))
        assert [type(e) for e in feed.events] == [EpochStarted]
        assert feed.events[0] == EpochStarted(
            StreamKey(TOPIC, PARTITION, "p", 2),
            previous_epoch=1,
            first_seq=0,
            offset=10,
            at=feed.now,
        )
        assert feed.tracker.gaps() == []

    def test_r3_new_epoch_head_loss_when_previous_epoch_was_witnessed(self) -> None:
        """A witnessed restart first seen at seq 5 means 0..4 are missing (head loss)."""
        feed = Feed()
        feed.run("p", 1, range(3))
        feed.record("p", 2, 5)
        (opened,) = feed.of(GapOpened)
        assert isinstance(opened, GapOpened)
        gap = opened.gap
        assert (gap.first_seq, gap.last_seq, gap.count, gap.cause) == (0, 4, 5, GapCause.HEAD)
        assert (gap.offset_before, gap.offset_after) == (2, 3)
        feed.settle()
        assert feed.tracker.counters.missing == 5

    def test_r3_head_loss_is_not_inferred_from_the_log_start(self) -> None:
        """An epoch never seen before is a baseline even if it starts at 5 at offset 0."""
        feed = Feed()
        feed.record("p", 2, 5)
        feed.settle()
        assert feed.tracker.gaps() == []
        assert feed.tracker.counters.missing == 0


class TestR4OldEpoch:
    def test_r4_old_epoch_record_is_flagged_as_zombie(self) -> None:
        """A record of epoch 1 after epoch 2 began is flagged, not mixed into epoch 2."""
        feed = Feed()
        feed.run("p", 1, range(3))
        feed.run("p", 2, range(3))
        events = feed.record("p", 1, 3)
        assert len(events) == 1
        zombie = events[0]
        assert isinstance(zombie, ZombieEpoch)
        assert (zombie.key.epoch, zombie.current_epoch, zombie.seq) == (1, 2, 3)
        assert feed.tracker.counters.zombies == 1
        assert feed.record("p", 2, 3) is NO_EVENTS  # epoch 2 unaffected

    def test_r4_old_epoch_record_that_fills_its_gap_heals_it(self) -> None:
        """A late record of a retired epoch still heals that epoch's open gap."""
        feed = Feed()
        feed.run("p", 1, [0, 1, 3])
        feed.run("p", 2, [0])
        (healed,) = feed.record("p", 1, 2)
        assert isinstance(healed, GapHealed)
        assert feed.tracker.counters.zombies == 0


class TestR5JumpAhead:
    def test_r5_jump_ahead_opens_a_gap_with_bounding_records(self) -> None:
        """Seq 10 after 4 opens 5..9 at once, bounded by the records of seq 4 and 10."""
        feed = Feed()
        feed.run("p", 1, range(5))
        (opened,) = feed.record("p", 1, 10, ts=777)
        assert isinstance(opened, GapOpened)
        gap = opened.gap
        assert (gap.first_seq, gap.last_seq, gap.count, gap.state) == (5, 9, 5, GapState.OPEN)
        assert (gap.offset_before, gap.offset_after) == (4, 5)
        assert (gap.timestamp_before_ms, gap.timestamp_after_ms) == (4, 777)
        assert gap.opened_at == feed.now
        key = StreamKey(TOPIC, PARTITION, "p", 1)
        assert gap.id == gap_id(key, 5, cause=GapCause.SEQUENCE)
        assert feed.tracker.counters.open_gaps == 1


class TestR6Late:
    def test_r6_late_shrinks_splits_and_heals(self) -> None:
        """Late records shrink, split (new id for the right piece) and heal; never lost."""
        feed = Feed()
        feed.run("p", 1, [0, 6])  # gap 1..5
        (shrunk,) = feed.record("p", 1, 1)
        assert isinstance(shrunk, GapShrunk)
        assert (shrunk.gap.first_seq, shrunk.gap.count) == (2, 4)
        (split,) = feed.record("p", 1, 3)
        assert isinstance(split, GapSplit)
        assert (split.left.first_seq, split.left.last_seq) == (2, 2)
        assert (split.right.first_seq, split.right.last_seq) == (4, 5)
        key = StreamKey(TOPIC, PARTITION, "p", 1)
        assert split.left.id == gap_id(key, 1, cause=GapCause.SEQUENCE)
        assert split.right.id == gap_id(key, 4, cause=GapCause.SEQUENCE)
        feed.run("p", 1, [2, 4, 5])
        assert len(feed.of(GapHealed)) == 2
        feed.settle()
        c = feed.tracker.counters
        assert (c.late, c.missing, c.open_gaps, c.duplicates) == (5, 0, 0, 0)
        assert {g.state for g in feed.tracker.gaps()} == {GapState.HEALED}


class TestR7Recovered:
    def test_r7_recovered_after_confirmation_keeps_the_loss(self) -> None:
        """A record of a confirmed gap is counted recovered; the loss count stays."""
        feed = Feed()
        feed.run("p", 1, [0, 4])  # gap 1..3
        (confirmed,) = feed.settle()
        assert isinstance(confirmed, GapConfirmed)
        (rec,) = feed.record("p", 1, 2)
        assert isinstance(rec, GapRecovered)
        assert (rec.gap.state, rec.gap.recovered, rec.gap.count) == (GapState.CONFIRMED, 1, 3)
        feed.run("p", 1, [1, 3])
        last = feed.of(GapRecovered)[-1]
        assert isinstance(last, GapRecovered)
        assert last.gap.state is GapState.RECOVERED
        c = feed.tracker.counters
        assert (c.missing, c.recovered, c.late, c.duplicates) == (3, 3, 0, 0)
        feed.record("p", 1, 2)  # a fourth copy is now a plain duplicate
        assert feed.tracker.counters.duplicates == 1


class TestR8Reset:
    def test_r8_reset_third_party_restart_is_one_event_not_duplicates(self) -> None:
        """Same epoch restarting at 0 with newer timestamps: one SequenceReset, no dups."""
        feed = Feed()
        for s in range(100):
            feed.record("p", 1, s, ts=1_000 + s)
        for s in range(50):
            feed.record("p", 1, s, ts=5_000 + s)
        assert [type(e) for e in feed.events] == [SequenceReset]
        reset = feed.events[0]
        assert isinstance(reset, SequenceReset)
        assert (reset.previous_high_seq, reset.generation) == (99, 1)
        feed.settle()
        c = feed.tracker.counters
        assert (c.resets, c.duplicates, c.missing) == (1, 0, 0)

    def test_r8_reset_tie_break_retried_record_zero_is_a_duplicate(self) -> None:
        """A retried record 0 keeps its CreateTime, so it is a duplicate, not a reset,
        and the stream continues without a false gap."""
        feed = Feed()
        for s in range(10):
            feed.record("p", 1, s, ts=1_000 + s)
        (dup,) = feed.record("p", 1, 0, ts=1_000)
        assert isinstance(dup, DuplicateRecords)
        assert (dup.first_seq, dup.count) == (0, 1)
        for s in range(10, 20):
            feed.record("p", 1, s, ts=1_000 + s)
        feed.settle()
        c = feed.tracker.counters
        assert (c.resets, c.duplicates, c.missing, c.open_gaps) == (0, 1, 0, 0)
        assert feed.tracker.gaps() == []

    def test_r8_reset_old_generation_gap_is_still_confirmed(self) -> None:
        """A gap open when the producer reset is still reported (it cannot heal any more)."""
        feed = Feed()
        feed.run("p", 1, [0, 1, 3])
        feed.record("p", 1, 0, ts=10_000)
        feed.settle()
        (confirmed,) = feed.of(GapConfirmed)
        assert isinstance(confirmed, GapConfirmed)
        assert (confirmed.gap.first_seq, confirmed.gap.generation) == (2, 0)

    def test_r8_reset_tie_break_when_the_newest_record_left_the_ring(self) -> None:
        """With the stream's newest record out of the ring, the ring's oldest timestamp
        decides: an old CreateTime is a duplicate, a fresh one a reset."""
        feed = Feed(ring_size=4)
        for s in range(3):
            feed.record("p", 1, s, ts=100 + s)
        for s in range(10):
            feed.record("q", 1, s, ts=200 + s)
        assert feed.tracker.streams()[0].last_timestamp_ms == -1  # left the ring
        (dup,) = feed.record("p", 1, 0, ts=100)
        assert isinstance(dup, DuplicateRecords)
        (reset,) = feed.record("p", 1, 0, ts=900)
        assert isinstance(reset, SequenceReset)


class TestR9BeforeBase:
    def test_r9_before_base_reordered_first_records_are_late_not_duplicates(self) -> None:
        """Seen 1 then 0 at the stream's start: 0 precedes the baseline and is late."""
        feed = Feed()
        feed.record("p", 1, 1)
        assert feed.record("p", 1, 0) is NO_EVENTS
        c = feed.tracker.counters
        assert (c.late, c.duplicates, c.resets) == (1, 0, 0)

    def test_r9_before_base_only_until_the_confirmation_rule_holds(self) -> None:
        """Once R11 holds for the first sight, a record below the baseline is a duplicate."""
        feed = Feed()
        feed.record("p", 1, 5)
        assert feed.tracker.streams()[0].base_seq == 5
        feed.settle()
        feed.record("p", 1, 3)
        c = feed.tracker.counters
        assert (c.late, c.duplicates) == (0, 1)
        assert feed.tracker.streams()[0].base_seq == 0


class TestR10Duplicate:
    def test_r10_duplicate_counts_each_copy_exactly(self) -> None:
        """Each re-read of an already seen sequence is one duplicate."""
        feed = Feed()
        feed.run("p", 1, [0, 1, 2, 3, 2, 3, 3, 4])
        dups = feed.of(DuplicateRecords)
        assert [d.first_seq for d in dups if isinstance(d, DuplicateRecords)] == [2, 3, 3]
        assert feed.tracker.counters.duplicates == 3


class TestR11Confirmation:
    def test_r11_confirmation_needs_grace_and_a_later_watermark(self) -> None:
        """Grace alone is not enough, and neither is a watermark observed too early."""
        feed = Feed(grace=10.0)
        feed.run("p", 1, [0, 5])
        opened_at = feed.now
        t = feed.tracker
        # Caught up, but with a watermark observed before opened_at + grace.
        assert (
            t.note_read_position(read_offset=2, high_watermark=2, observed_at=opened_at + 9) == ()
        )
        assert t.tick(opened_at + 100) == ()  # grace long past, still no later watermark
        # A watermark observed after the grace, not yet read up to: still open.
        assert (
            t.note_read_position(read_offset=2, high_watermark=7, observed_at=opened_at + 10) == ()
        )
        assert t.counters.open_gaps == 1
        # The consumer reaches that watermark: now it is confirmed, count exact.
        events = t.note_read_position(read_offset=7, high_watermark=9, observed_at=opened_at + 101)
        (confirmed,) = events
        assert isinstance(confirmed, GapConfirmed)
        assert confirmed.gap.count == 4
        assert confirmed.gap.state is GapState.CONFIRMED
        assert (t.counters.missing, t.counters.gaps_confirmed, t.counters.open_gaps) == (4, 1, 0)

    def test_r11_confirmation_stalled_consumer_does_not_confirm(self) -> None:
        """A monitor that stalls past the grace lets late records heal the gap first."""
        feed = Feed(grace=5.0)
        feed.run("p", 1, [0, 2])
        feed.now += 60  # stall: time passes, nothing read, no caught-up fact
        assert feed.tracker.tick(feed.now) == ()
        feed.record("p", 1, 1)  # the late record was waiting in the log
        feed.settle()
        assert feed.tracker.counters.missing == 0
        assert len(feed.of(GapHealed)) == 1

    def test_r11_confirmation_zero_grace_is_allowed(self) -> None:
        """grace 0: confirmed as soon as a watermark is read after the gap opened."""
        feed = Feed(grace=0.0)
        feed.run("p", 1, [0, 2])
        assert len(feed.settle(advance=0.0)) == 1


class TestR12ProducerReport:
    def report(self, **kw: object) -> ProducerReport:
        base: dict[str, object] = {
            "producer": "p",
            "epoch": 1,
            "topic": TOPIC,
            "partition": PARTITION,
            "highest_assigned": 9,
            "highest_acked": 9,
            "failed": (),
            "final": False,
        }
        base.update(kw)
        return ProducerReport(**base)  # type: ignore[arg-type]

    def test_r12_producer_report_tail_loss_is_confirmed(self) -> None:
        """Acknowledged 0..9, only 0..6 ever arrive: 7..9 are a confirmed tail gap."""
        feed = Feed()
        feed.run("p", 1, range(7))
        feed.tracker.apply_producer_report(self.report(), feed.now)
        (confirmed,) = feed.settle()
        assert isinstance(confirmed, GapConfirmed)
        gap = confirmed.gap
        assert (gap.first_seq, gap.last_seq, gap.cause, gap.count) == (7, 9, GapCause.TAIL, 3)
        assert feed.tracker.counters.missing == 3

    def test_r12_producer_report_acked_records_arriving_in_time_are_no_loss(self) -> None:
        """The monitor was merely behind the report: no claim of loss."""
        feed = Feed()
        feed.run("p", 1, range(3))
        feed.tracker.apply_producer_report(self.report(), feed.now)
        feed.run("p", 1, range(3, 10))
        assert feed.settle() == ()
        assert feed.tracker.counters.missing == 0

    def test_r12_producer_report_final_unacked_is_unknown_fate_failed_is_told(self) -> None:
        """Final report: acked 0..4, assigned 0..9, 8..9 failed; 0..2 arrived."""
        feed = Feed()
        feed.run("p", 1, range(3))
        report = self.report(highest_acked=4, failed=((8, 9),), final=True)
        feed.tracker.apply_producer_report(report, feed.now)
        feed.settle()
        confirmed = [e.gap for e in feed.of(GapConfirmed) if isinstance(e, GapConfirmed)]
        assert [(g.first_seq, g.last_seq, g.producer_told) for g in confirmed] == [
            (3, 4, False),
            (8, 9, True),
        ]
        (unknown,) = feed.of(UnknownFate)
        assert isinstance(unknown, UnknownFate)
        assert (unknown.first_seq, unknown.last_seq) == (5, 7)
        assert feed.tracker.counters.unknown_fate == 3

    def test_r12_producer_report_failed_range_marks_the_gap_producer_told(self) -> None:
        """A gap over sequences the producer reported failed says the producer knew."""
        feed = Feed()
        feed.run("p", 1, [0, 1])
        feed.tracker.apply_producer_report(self.report(failed=((2, 3),)), feed.now)
        (opened,) = feed.record("p", 1, 4)
        assert isinstance(opened, GapOpened)
        assert opened.gap.producer_told

    def test_r12_producer_report_failed_ranges_outlive_a_matured_orphan_report(self) -> None:
        """Found by the model test: a report of an epoch not read yet, with nothing
        acknowledged, matures with no claim; when the epoch then appears past sequence 0,
        its head gap is cut at the failed ranges, told and silent never mixed. The held
        ranges survive a snapshot, and are forgotten after idle_eviction."""

        def fed_until_matured() -> Feed:
            feed = Feed()
            feed.run("p", 1, range(3))
            report = self.report(epoch=2, highest_assigned=7, highest_acked=None)
            report = dataclasses.replace(report, failed=((0, 0), (2, 2), (5, 7)))
            feed.tracker.apply_producer_report(report, feed.now)
            assert feed.settle() == ()  # no claim to make
            assert feed.tracker.counters.reports_unmatched == 1
            return feed

        feed = fed_until_matured()
        restored = PartitionTracker.restore(
            feed.tracker.snapshot(), topic=TOPIC, partition=PARTITION
        )
        for tracker in (feed.tracker, restored):
            tracker.observe(feed.offset, 8, Stamp("p", 2, 8), feed.now)
            head = [
                (g.first_seq, g.last_seq, g.producer_told)
                for g in sorted(tracker.gaps(), key=lambda g: g.first_seq)
            ]
            assert head == [(0, 0, True), (1, 1, False), (2, 2, True), (3, 4, False), (5, 7, True)]
        forgetful = fed_until_matured()
        forgetful.settle(advance=forgetful.tracker.config.idle_eviction + 1)
        forgetful.record("p", 2, 8)
        assert [g.producer_told for g in forgetful.tracker.gaps()] == [False]

    def test_r12_producer_report_gap_opening_is_cut_at_failed_range_boundaries(self) -> None:
        """chaos-bugs.txt BUG 1: 101..107 lost silently, 108..1503 failed (told) and known
        when the gap opens: two gaps, each entirely told or silent, ids by first sequence."""
        t = PartitionTracker("t", 0, config=TrackerConfig(grace_period=0))
        now = 1000.0
        for seq in range(101):
            t.observe(seq, 1_000_000 + seq, Stamp("p", 1, seq), now)
        report = ProducerReport("p", 1, "t", 0, 1600, None, ((108, 1503),), False)
        t.apply_producer_report(report, now)
        opened = t.observe(101, 1_000_200, Stamp("p", 1, 1504), now + 1)
        assert [type(e) for e in opened] == [GapOpened, GapOpened]
        t.note_read_position(read_offset=102, high_watermark=102, observed_at=now + 2)
        t.tick(now + 3)
        key = StreamKey("t", 0, "p", 1)
        assert [(g.state, g.first_seq, g.last_seq, g.producer_told, g.id) for g in t.gaps()] == [
            (GapState.CONFIRMED, 101, 107, False, gap_id(key, 101, cause=GapCause.SEQUENCE)),
            (GapState.CONFIRMED, 108, 1503, True, gap_id(key, 108, cause=GapCause.SEQUENCE)),
        ]
        c = t.counters
        assert (c.missing, c.gaps_confirmed, c.open_gaps) == (1403, 2, 0)

    def test_r12_producer_report_late_failed_range_splits_an_open_gap(self) -> None:
        """A report arriving while gap 2..9 is open, failed 4..6: three open pieces
        (silent, told, silent), one ``GapSplit`` per boundary; each then heals or is
        confirmed on its own."""
        feed = Feed()
        feed.run("p", 1, [0, 1, 10])  # gap 2..9
        events = feed.tracker.apply_producer_report(self.report(failed=((4, 6),)), feed.now)
        assert all(isinstance(e, GapSplit) and e.seq is None for e in events)
        pieces = [(g.first_seq, g.last_seq, g.producer_told) for g in feed.tracker.open_gaps()]
        assert sorted(pieces) == [(2, 3, False), (4, 6, True), (7, 9, False)]
        assert len(events) == 2
        assert feed.tracker.counters.open_gaps == 3
        feed.run("p", 1, [2, 3])  # the first piece heals: late, not lost
        feed.settle()
        confirmed = sorted((g.first_seq, g.last_seq, g.producer_told) for g in feed.tracker.gaps()
                           if g.state is GapState.CONFIRMED)  # fmt: skip
        assert confirmed == [(4, 6, True), (7, 9, False)]
        c = feed.tracker.counters
        assert (c.missing, c.gaps_confirmed, c.open_gaps, c.late) == (6, 2, 0, 2)

    def test_r12_producer_report_late_failed_range_splits_a_confirmed_gap(self) -> None:
        """After confirmation: the record is split, the loss count stays, each piece's
        ``recovered`` is its own, and later arrivals recover the right piece; the split
        survives a snapshot with the same ids."""
        feed = Feed()
        feed.run("p", 1, [0, 10])  # gap 1..9
        feed.settle()
        feed.record("p", 1, 2)  # R7: one record of the left part came back
        events = feed.tracker.apply_producer_report(self.report(failed=((5, 20),)), feed.now)
        (split,) = events
        assert isinstance(split, GapSplit)
        assert split.seq is None
        left, right = split.left, split.right
        assert (left.first_seq, left.last_seq, left.count, left.recovered) == (1, 4, 4, 1)
        assert (right.first_seq, right.last_seq, right.count, right.recovered) == (5, 9, 5, 0)
        assert (left.producer_told, right.producer_told) == (False, True)
        assert {left.state, right.state} == {GapState.CONFIRMED}
        key = StreamKey(TOPIC, PARTITION, "p", 1)
        assert right.id == gap_id(key, 5, cause=GapCause.SEQUENCE)
        c = feed.tracker.counters
        assert (c.missing, c.gaps_confirmed, c.open_gaps) == (9, 2, 0)
        restored = PartitionTracker.restore(
            feed.tracker.snapshot(), topic=TOPIC, partition=PARTITION, config=feed.tracker.config
        )
        assert restored.gaps() == feed.tracker.gaps()
        (rec,) = restored.observe(99, 7, Stamp("p", 1, 6), feed.now)
        assert isinstance(rec, GapRecovered)
        assert rec.gap.id == right.id

    def test_r12_producer_report_split_piece_fully_recovered_is_closed(self) -> None:
        """A confirmed piece whose every record already came back is ``recovered``."""
        feed = Feed()
        feed.run("p", 1, [0, 5])  # gap 1..4
        feed.settle()
        feed.run("p", 1, [1, 2])
        (split,) = feed.tracker.apply_producer_report(self.report(failed=((3, 4),)), feed.now)
        assert isinstance(split, GapSplit)
        assert (split.left.state, split.left.recovered) == (GapState.RECOVERED, 2)
        assert (split.right.state, split.right.producer_told) == (GapState.CONFIRMED, True)
        assert feed.tracker.counters.missing == 4

    def test_r12_producer_report_tail_gap_is_cut_at_failed_range_boundaries(self) -> None:
        """Acknowledged up to 9, 5..6 failed, only 0..2 arrived: tail gaps 3..4 and 7..9
        silent, 5..6 told."""
        feed = Feed()
        feed.run("p", 1, range(3))
        feed.tracker.apply_producer_report(self.report(failed=((5, 6),)), feed.now)
        feed.settle()
        confirmed = [e.gap for e in feed.of(GapConfirmed) if isinstance(e, GapConfirmed)]
        assert [(g.first_seq, g.last_seq, g.producer_told, g.cause) for g in confirmed] == [
            (3, 4, False, GapCause.TAIL),
            (5, 6, True, GapCause.TAIL),
            (7, 9, False, GapCause.TAIL),
        ]
        assert feed.tracker.counters.missing == 7

    def test_r12_producer_report_failed_range_covering_a_whole_gap_keeps_it_whole(
        self,
    ) -> None:
        """Overlapping or adjacent failed ranges over a whole open gap: marked, not cut,
        and said in one GapTold event (so /gaps and the gap log learn it at once)."""
        feed = Feed()
        feed.run("p", 1, [0, 1, 6])  # gap 2..5
        events = feed.tracker.apply_producer_report(
            self.report(failed=((1, 3), (4, 4), (3, 5))), feed.now
        )
        (gap,) = feed.tracker.open_gaps()
        assert (gap.first_seq, gap.last_seq, gap.producer_told) == (2, 5, True)
        assert events == (GapTold(gap),)

    def test_r12_open_told_pieces_join_when_a_later_report_tells_the_silent_one(self) -> None:
        """The gap opens when only 2..4 is known failed (cut: told 2..4, silent 5..9);
        the next report says 5..9 failed too, while both are open: one gap again, the
        left piece's id, one ``GapJoined``; confirmed as one gap of 8."""
        feed = Feed()
        feed.run("p", 1, [0, 1])
        feed.tracker.apply_producer_report(self.report(failed=((2, 4),)), feed.now)
        feed.record("p", 1, 10)
        left, right = sorted(feed.tracker.open_gaps(), key=lambda g: g.first_seq)
        assert (left.producer_told, right.producer_told) == (True, False)
        events = feed.tracker.apply_producer_report(self.report(failed=((5, 9),)), feed.now)
        assert [type(e) for e in events] == [GapTold, GapJoined]
        joined = events[1]
        assert isinstance(joined, GapJoined)
        assert (joined.gap.id, joined.gap.first_seq, joined.gap.last_seq) == (left.id, 2, 9)
        assert (joined.gap.count, joined.gap.producer_told) == (8, True)
        assert joined.absorbed.id == right.id
        assert feed.tracker.counters.open_gaps == 1
        feed.record("p", 1, 5)  # a late record still splits the joined gap (R6)
        feed.settle()
        confirmed = sorted((g.first_seq, g.last_seq, g.producer_told) for g in feed.tracker.gaps()
                           if g.state is GapState.CONFIRMED)  # fmt: skip
        assert confirmed == [(2, 4, True), (6, 9, True)]
        c = feed.tracker.counters
        assert (c.missing, c.gaps_confirmed, c.open_gaps, c.late) == (7, 2, 0, 1)

    def test_r12_told_pieces_join_across_a_partial_report(self) -> None:
        """Told 2..4 | silent 5..9, then a report of 5..6 only: the silent piece is cut,
        its told part joins the left piece (2..6 told), 7..9 stays silent."""
        feed = Feed()
        feed.run("p", 1, [0, 1])
        feed.tracker.apply_producer_report(self.report(failed=((2, 4),)), feed.now)
        feed.record("p", 1, 10)
        events = feed.tracker.apply_producer_report(self.report(failed=((5, 6),)), feed.now)
        assert [type(e) for e in events] == [GapSplit, GapJoined]
        pieces = sorted((g.first_seq, g.last_seq, g.producer_told)
                        for g in feed.tracker.open_gaps())  # fmt: skip
        assert pieces == [(2, 6, True), (7, 9, False)]
        assert feed.tracker.counters.open_gaps == 2

    def test_r12_confirmed_told_pieces_are_never_joined(self) -> None:
        """The silent piece was confirmed (counted, perhaps paged) before its report came:
        it is marked told and stays its own gap; the counters do not go back."""
        feed = Feed()
        feed.run("p", 1, [0, 1])
        feed.tracker.apply_producer_report(self.report(failed=((2, 4),)), feed.now)
        feed.record("p", 1, 10)
        feed.settle()
        events = feed.tracker.apply_producer_report(self.report(failed=((5, 9),)), feed.now)
        assert [type(e) for e in events] == [GapTold]
        gaps = sorted((g.first_seq, g.last_seq, g.producer_told, g.state)
                      for g in feed.tracker.gaps())  # fmt: skip
        assert gaps == [(2, 4, True, GapState.CONFIRMED), (5, 9, True, GapState.CONFIRMED)]
        assert feed.tracker.counters.gaps_confirmed == 2

    def test_r12_joined_gap_survives_a_snapshot(self) -> None:
        """The joined gap is an ordinary gap: a restored tracker has the same gaps and
        still confirms it as one."""
        feed = Feed()
        feed.run("p", 1, [0, 1])
        feed.tracker.apply_producer_report(self.report(failed=((2, 4),)), feed.now)
        feed.record("p", 1, 10)
        feed.tracker.apply_producer_report(self.report(failed=((5, 9),)), feed.now)
        restored = PartitionTracker.restore(
            feed.tracker.snapshot(), topic=TOPIC, partition=PARTITION, config=feed.tracker.config
        )
        assert restored.gaps() == feed.tracker.gaps()
        assert restored.counters.open_gaps == 1
        feed.tracker = restored
        feed.settle()
        ((first, last, told),) = [(g.first_seq, g.last_seq, g.producer_told)
                                  for g in restored.gaps()]  # fmt: skip
        assert (first, last, told) == (2, 9, True)

    @settings(max_examples=200, deadline=None)
    @given(
        gap=st.tuples(st.integers(1, 30), st.integers(0, 30)),
        failed=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 10)), max_size=4),
        first_reports=st.integers(0, 4),
    )
    def test_r12_reports_in_parts_before_confirmation_give_maximal_gaps(
        self, gap: tuple[int, int], failed: list[tuple[int, int]], first_reports: int
    ) -> None:
        """Failed ranges delivered one report each, some before the gap opens and the
        rest while it is open: the confirmed gaps are exactly the maximal told and silent
        runs, as if every report had come first."""
        first, length = gap
        last = first + length
        ranges = [(a, a + n) for a, n in failed]
        feed = Feed()
        feed.run("p", 1, range(first))
        for i, span in enumerate(ranges):
            if i == first_reports:
                feed.record("p", 1, last + 1)
            feed.tracker.apply_producer_report(
                self.report(highest_assigned=None, highest_acked=None, failed=(span,)), feed.now
            )
        if first_reports >= len(ranges):
            feed.record("p", 1, last + 1)
        feed.settle()
        told = {s for a, b in ranges for s in range(a, b + 1)}
        expected = []
        for s in range(first, last + 1):
            if expected and expected[-1][2] == (s in told) and expected[-1][1] == s - 1:
                expected[-1] = (expected[-1][0], s, s in told)
            else:
                expected.append((s, s, s in told))
        got = sorted((g.first_seq, g.last_seq, g.producer_told) for g in feed.tracker.gaps())
        assert all(g.state is GapState.CONFIRMED for g in feed.tracker.gaps())
        assert got == expected
        c = feed.tracker.counters
        assert (c.missing, c.gaps_confirmed, c.open_gaps) == (length + 1, len(expected), 0)

    @settings(max_examples=200, deadline=None)
    @given(
        gap=st.tuples(st.integers(1, 30), st.integers(0, 30)),
        failed=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 10)), max_size=4),
        when=st.sampled_from(["before", "open", "confirmed"]),
    )
    def test_r12_producer_report_told_is_exact_per_sequence(
        self, gap: tuple[int, int], failed: list[tuple[int, int]], when: str
    ) -> None:
        """Whenever the report arrives, each lost sequence's gap is told exactly when the
        sequence was reported failed; the loss count is every missing sequence."""
        first, length = gap
        last = first + length
        ranges = tuple((a, a + n) for a, n in failed)
        report = self.report(highest_assigned=None, highest_acked=None, failed=ranges)
        feed = Feed()
        feed.run("p", 1, range(first))
        if when == "before":
            feed.tracker.apply_producer_report(report, feed.now)
        feed.record("p", 1, last + 1)
        if when == "confirmed":
            feed.settle()
        if when != "before":
            feed.tracker.apply_producer_report(report, feed.now)
        feed.settle()
        told = {s for a, b in ranges for s in range(a, b + 1)}
        seen: list[int] = []
        for g in feed.tracker.gaps():
            assert g.state is GapState.CONFIRMED
            assert g.count == g.last_seq - g.first_seq + 1
            for s in range(g.first_seq, g.last_seq + 1):
                assert g.producer_told == (s in told), (g, s)
                seen.append(s)
        assert sorted(seen) == list(range(first, last + 1))
        c = feed.tracker.counters
        assert (c.missing, c.gaps_confirmed) == (length + 1, len(feed.tracker.gaps()))

    def test_r12_producer_report_for_another_partition_is_counted_unmatched(self) -> None:
        """A report that is not about this partition changes nothing."""
        feed = Feed()
        feed.tracker.apply_producer_report(self.report(partition=99), feed.now)
        assert feed.tracker.counters.reports_unmatched == 1


class TestR13Truncation:
    def test_r13_truncation_reports_exactly_the_sequences_gone(self) -> None:
        """Truncating to offset 6 removes what was read at 6..9; re-sent copies recover."""
        feed = Feed()
        feed.run("a", 1, range(5))  # offsets 0..4
        feed.run("b", 1, range(3))  # offsets 5..7
        feed.run("a", 1, [5, 6])  # offsets 8, 9
        (event,) = feed.tracker.log_truncated(6, feed.now)
        assert isinstance(event, RecordsTruncated)
        assert (event.previous_end_offset, event.count, event.unaccounted) == (10, 4, 0)
        ranges = sorted((g.producer, g.first_seq, g.last_seq) for g in event.gaps)
        assert ranges == [("a", 5, 6), ("b", 1, 2)]
        assert all(g.state is GapState.TRUNCATED for g in event.gaps)
        assert feed.tracker.counters.truncated == 4
        feed.offset = 6  # the log really ends there now
        feed.run("b", 1, [1, 2, 3])  # the producer re-sends: recovered, then in order
        c = feed.tracker.counters
        assert (c.recovered, c.duplicates) == (2, 0)

    def test_r13_truncation_beyond_the_ring_is_unaccounted(self) -> None:
        """With a ring of 4, truncating 6 records back reports 2 offsets as unaccounted."""
        feed = Feed(ring_size=4)
        feed.run("a", 1, range(10))
        (event,) = feed.tracker.log_truncated(4, feed.now)
        assert isinstance(event, RecordsTruncated)
        assert (event.count, event.unaccounted) == (4, 2)

    def test_r13_truncation_of_a_duplicate_copy_loses_nothing(self) -> None:
        """If the truncated record was a second copy, the first is still in the log."""
        feed = Feed()
        feed.run("a", 1, [0, 1, 2, 2])
        (event,) = feed.tracker.log_truncated(3, feed.now)
        assert isinstance(event, RecordsTruncated)
        assert event.count == 0

    def test_r13_divergence_is_the_first_offset_holding_another_record(self) -> None:
        """The new leader kept offsets 0..5 and appended other records at 6..: exactly the
        sequences read at 6..9 are truncated and the new records there are tracked on."""
        feed = Feed()
        feed.run("a", 1, range(10))  # offsets 0..9
        log = [(o, Stamp("a", 1, o)) for o in range(6)] + [
            (6, Stamp("a", 1, 10)),
            (7, Stamp("a", 1, 11)),
        ]
        assert feed.tracker.newest_read() == (9, Stamp("a", 1, 9))
        assert feed.tracker.verify_from() == 0
        found = feed.tracker.find_divergence(log, log_start=0, log_end=8)
        assert found == (6, False)
        (event,) = feed.tracker.log_diverged_at(6, feed.now, beyond_ring=found[1])
        assert isinstance(event, RecordsTruncated)
        assert [(g.first_seq, g.last_seq, g.state) for g in event.gaps] == [
            (6, 9, GapState.TRUNCATED)
        ]
        assert not event.beyond_ring
        feed.offset = 6
        assert feed.record("a", 1, 10) is NO_EVENTS  # the new leader's records: in order
        assert feed.record("a", 1, 11) is NO_EVENTS
        c = feed.tracker.counters
        assert (c.truncated, c.duplicates, c.open_gaps, c.truncations_beyond_ring) == (4, 0, 0, 0)

    def test_r13_divergence_none_when_the_log_holds_what_was_read(self) -> None:
        """Same stamps at the same offsets (unstamped records in between are not in the
        ring): no divergence, even with more records after the read position."""
        feed = Feed()
        feed.run("a", 1, range(3))
        log: list[tuple[int, Stamp | None]] = [(o, Stamp("a", 1, o)) for o in range(3)]
        log += [(3, None), (4, Stamp("a", 1, 3))]
        assert feed.tracker.find_divergence(log, log_start=0, log_end=5) is None

    def test_r13_divergence_at_a_hole_or_the_new_log_end(self) -> None:
        """An offset the log no longer has, or one at/above the new end, is the point."""
        feed = Feed()
        feed.run("a", 1, range(6))
        holed = [(o, Stamp("a", 1, o)) for o in (0, 1, 3, 4, 5)]
        assert feed.tracker.find_divergence(holed, log_start=0, log_end=6) == (2, False)
        short = [(o, Stamp("a", 1, o)) for o in range(4)]
        assert feed.tracker.find_divergence(short, log_start=0, log_end=4) == (4, False)

    def test_r13_divergence_below_the_log_start_is_not_compared(self) -> None:
        """Ring entries retention removed from the new log are not a divergence."""
        feed = Feed()
        feed.run("a", 1, range(6))
        log = [(o, Stamp("a", 1, o)) for o in range(3, 6)]
        assert feed.tracker.find_divergence(log, log_start=3, log_end=6) is None

    def test_r13_divergence_at_the_oldest_ring_record_is_beyond_the_ring(self) -> None:
        """With a ring of 4, a log differing from the ring's oldest record may differ
        further back: the 4 records are reported exactly and flagged beyond_ring."""
        feed = Feed(ring_size=4)
        feed.run("a", 1, range(10))
        log = [(o, Stamp("b", 1, o)) for o in range(10)]
        assert feed.tracker.verify_from() == 6
        found = feed.tracker.find_divergence(log, log_start=0, log_end=10)
        assert found == (6, True)
        (event,) = feed.tracker.log_diverged_at(6, feed.now, beyond_ring=True)
        assert isinstance(event, RecordsTruncated)
        assert (event.count, event.beyond_ring) == (4, True)
        assert feed.tracker.counters.truncations_beyond_ring == 1


class TestR14Eviction:
    def test_r14_eviction_idle_streams_are_forgotten_and_counted(self) -> None:
        """An idle stream without open gaps is evicted after idle_eviction, counted."""
        feed = Feed(grace=1.0, idle_eviction=100.0)
        feed.run("a", 1, range(3))
        feed.now += 50
        feed.run("b", 1, range(3))
        feed.now += 60
        events = feed.tracker.tick(feed.now)
        assert [(type(e), e.key.producer) for e in events if isinstance(e, StreamEvicted)] == [
            (StreamEvicted, "a")
        ]
        c = feed.tracker.counters
        assert (c.evictions, c.streams) == (1, 1)

    def test_r14_eviction_cap_evicts_least_recently_seen(self) -> None:
        """At max_streams, a new producer evicts the stalest one."""
        feed = Feed(max_streams=2)
        feed.record("a", 1, 0)
        feed.now += 1
        feed.record("b", 1, 0)
        feed.now += 1
        events = feed.record("c", 1, 0)
        assert [e.key.producer for e in events if isinstance(e, StreamEvicted)] == ["a"]
        assert feed.tracker.counters.streams == 2

    def test_r14_eviction_keeps_a_stream_with_an_open_gap(self) -> None:
        """An idle stream whose gap is still open is not evicted."""
        feed = Feed(grace=1.0, idle_eviction=100.0)
        feed.run("a", 1, [0, 5])
        feed.now += 500
        assert feed.tracker.tick(feed.now) == ()
        assert feed.tracker.counters.streams == 1


class TestR15Untrusted:
    def test_r15_untrusted_unstamped_and_malformed_are_counted(self) -> None:
        """They change nothing but their counters."""
        feed = Feed()
        feed.tracker.observe_unstamped()
        feed.tracker.observe_malformed("missing gapwatch-seq")
        c = feed.tracker.counters
        assert (c.unstamped, c.malformed, c.records, c.streams) == (1, 1, 0, 0)


class TestR16Skipped:
    @staticmethod
    def skip(feed: Feed, count: int) -> None:
        """Retention deleted the next ``count`` offsets before they were read."""
        first = feed.offset
        feed.offset += count
        events = feed.tracker.records_skipped(first, feed.offset - 1, feed.now)
        assert events == (
            RecordsSkipped(TOPIC, PARTITION, first, feed.offset - 1, count, feed.now),
        )

    def test_r16_skipped_next_record_is_a_new_baseline_not_a_gap(self) -> None:
        """After a skip a stream jumping ahead opens no gap; a gap confirmed before the
        skip and every counter are kept."""
        feed = Feed()
        feed.run("p", 1, [0, 1, 3])
        feed.settle()  # 2 confirmed lost
        feed.run("q", 1, range(5))
        self.skip(feed, 50)
        assert feed.record("p", 1, 40) is NO_EVENTS
        assert feed.record("q", 1, 70) is NO_EVENTS
        feed.run("p", 1, range(41, 45))
        feed.settle()
        c = feed.tracker.counters
        assert (c.missing, c.gaps_confirmed, c.open_gaps, c.duplicates) == (1, 1, 0, 0)
        assert c.records == 14
        assert [(g.first_seq, g.state) for g in feed.tracker.gaps()] == [(2, GapState.CONFIRMED)]

    def test_r16_skipped_in_order_record_ends_the_mark(self) -> None:
        """A stream whose next record is in order lost nothing: a later jump is a gap."""
        feed = Feed()
        feed.run("p", 1, range(10))
        self.skip(feed, 5)
        assert feed.record("p", 1, 10) is NO_EVENTS
        (opened,) = feed.record("p", 1, 15)
        assert isinstance(opened, GapOpened)
        assert (opened.gap.first_seq, opened.gap.last_seq) == (11, 14)

    def test_r16_skipped_earlier_records_after_the_baseline_are_late(self) -> None:
        """Records below the new baseline arriving after it are late (as R9), not dups."""
        feed = Feed()
        feed.run("p", 1, range(10))
        self.skip(feed, 5)
        feed.record("p", 1, 20)
        assert feed.record("p", 1, 18) is NO_EVENTS
        c = feed.tracker.counters
        assert (c.late, c.duplicates, c.open_gaps) == (1, 0, 0)

    def test_r16_skipped_gap_open_at_the_skip_ends_unknown_not_lost(self) -> None:
        """A gap open at the skip may have had its records deleted unread: when R11 holds
        it is unknown, not confirmed; a split keeps that for both pieces."""
        feed = Feed()
        feed.run("p", 1, [0, 1, 5])  # gap 2..4 open
        self.skip(feed, 10)
        (split,) = feed.record("p", 1, 3)  # arrives after the skip: still late
        assert isinstance(split, GapSplit)
        feed.run("p", 1, [6, 7])
        feed.settle()
        unknown = feed.of(GapUnknown)
        assert sorted((e.gap.first_seq, e.gap.state) for e in unknown) == [
            (2, GapState.UNKNOWN),
            (4, GapState.UNKNOWN),
        ]
        assert not feed.of(GapConfirmed)
        c = feed.tracker.counters
        assert (c.missing, c.gaps_confirmed, c.gaps_unknown, c.open_gaps, c.late) == (
            0,
            0,
            2,
            0,
            1,
        )
        assert not any(g.is_loss for g in feed.tracker.gaps())

    def test_r16_skipped_gap_opened_after_the_skip_is_confirmed(self) -> None:
        """Only gaps open at the skip are in doubt; a later gap is a loss as usual."""
        feed = Feed()
        feed.run("p", 1, range(3))
        self.skip(feed, 10)
        feed.run("p", 1, [3, 4, 6])
        feed.settle()
        assert [e.gap.first_seq for e in feed.of(GapConfirmed)] == [5]
        assert feed.tracker.counters.gaps_unknown == 0

    def test_r16_skipped_restart_among_deleted_records_is_a_reset(self) -> None:
        """Going back with a newer timestamp: the producer restarted among the deleted
        records (one SequenceReset), and its run continues without duplicates."""
        feed = Feed()
        for s in range(100):
            feed.record("p", 1, s, ts=1_000 + s)
        self.skip(feed, 30)
        (reset,) = feed.record("p", 1, 20, ts=9_000)
        assert isinstance(reset, SequenceReset)
        assert (reset.previous_high_seq, reset.generation) == (99, 1)
        for s in range(21, 30):
            assert feed.record("p", 1, s, ts=9_000 + s) is NO_EVENTS
        feed.settle()
        c = feed.tracker.counters
        assert (c.resets, c.duplicates, c.open_gaps, c.missing) == (1, 0, 0, 0)

    def test_r16_skipped_retried_copy_keeps_its_timestamp_and_is_a_duplicate(self) -> None:
        """Going back with an old timestamp is a retried copy (R10); the mark stays, so
        the stream's next new record is still a baseline."""
        feed = Feed()
        for s in range(10):
            feed.record("p", 1, s, ts=1_000 + s)
        self.skip(feed, 30)
        (dup,) = feed.record("p", 1, 9, ts=1_009)
        assert isinstance(dup, DuplicateRecords)
        assert feed.record("p", 1, 40, ts=5_000) is NO_EVENTS
        c = feed.tracker.counters
        assert (c.duplicates, c.open_gaps, c.resets) == (1, 0, 0)

    def test_r16_skipped_new_epoch_is_not_head_loss(self) -> None:
        """A new epoch first seen at 7 after a skip may have begun among the deleted
        records: no head gap."""
        feed = Feed()
        feed.run("p", 1, range(10))
        self.skip(feed, 30)
        events = feed.record("p", 2, 7)
        assert [type(e) for e in events] == [EpochStarted]
        feed.settle()
        assert feed.tracker.gaps() == []

    def test_r16_skipped_tail_claim_is_unknown_fate_not_loss(self) -> None:
        """Acknowledged records above the last one read, of a stream silent since the
        skip, may have been deleted unread: unknown fate, not a tail gap."""
        feed = Feed()
        feed.run("p", 1, range(10))
        self.skip(feed, 30)
        feed.tracker.apply_producer_report(
            ProducerReport("p", 1, TOPIC, PARTITION, 20, 20, (), True), feed.now
        )
        feed.settle()
        (fate,) = feed.of(UnknownFate)
        assert isinstance(fate, UnknownFate)
        assert (fate.first_seq, fate.last_seq, fate.count) == (10, 20, 11)
        c = feed.tracker.counters
        assert (c.missing, c.unknown_fate) == (0, 11)

    def test_r16_skipped_state_survives_a_snapshot(self) -> None:
        """A restore between the skip and the next records decides the same."""
        a, b = Feed(), Feed()
        for feed in (a, b):
            feed.run("p", 1, [0, 1, 5])
            self.skip(feed, 10)
        b.tracker = PartitionTracker.restore(
            b.tracker.snapshot(), topic=TOPIC, partition=PARTITION, config=b.tracker.config
        )
        for feed in (a, b):
            feed.run("p", 1, [30, 31])
            feed.settle()
        assert a.events == b.events
        assert [type(e) for e in b.events] == [GapOpened, GapUnknown]
        assert b.tracker.counters.as_dict() == a.tracker.counters.as_dict()
        assert b.tracker.counters.gaps_unknown == 1


class TestSnapshot:
    def test_snapshot_round_trips_every_decision_input(self) -> None:
        """A restored tracker decides the next records exactly like the original."""
        a, b = Feed(), Feed()
        for feed in (a, b):
            feed.run("p", 1, [0, 1, 5, 3])
            feed.run("q", 4, [0])
            feed.tracker.apply_producer_report(
                ProducerReport("q", 4, TOPIC, PARTITION, 3, 2, (), False), feed.now
            )
        b.tracker = PartitionTracker.restore(
            b.tracker.snapshot(), topic=TOPIC, partition=PARTITION, config=b.tracker.config
        )
        assert b.tracker.gaps() == a.tracker.gaps()
        for feed in (a, b):
            feed.run("p", 1, [2, 4, 6])
            feed.settle()
            feed.tracker.log_truncated(7, feed.now)
        assert a.events == b.events
        assert a.tracker.counters.as_dict() == b.tracker.counters.as_dict()

    @pytest.mark.parametrize(
        "data",
        [b"", b"GWT", b"GWT\x02xx", b"GWT\x01not zlib", b"nope", b"GWT\x01" + b"x\x9c\x03\x00"],
    )
    def test_snapshot_restore_rejects_garbage_with_snapshot_error(self, data: bytes) -> None:
        """Damaged bytes raise SnapshotError, never anything else."""
        with pytest.raises(SnapshotError):
            PartitionTracker.restore(data, topic=TOPIC, partition=PARTITION)

    @settings(max_examples=150, deadline=None)
    @given(data=st.data())
    def test_snapshot_restore_of_mutated_snapshots_raises_only_snapshot_error(
        self, data: st.DataObject
    ) -> None:
        """Flipped, cut or spliced bytes inside a valid snapshot's payload: a restore
        succeeds or raises SnapshotError, never anything else."""
        feed = Feed()
        feed.run("p", 1, [0, 1, 5, 3])
        feed.tracker.apply_producer_report(
            ProducerReport("p", 1, TOPIC, PARTITION, 9, 8, ((6, 7),), False), feed.now
        )
        blob = feed.tracker.snapshot()
        payload = bytearray(zlib.decompress(blob[4:]))
        for _ in range(data.draw(st.integers(1, 4))):
            at = data.draw(st.integers(0, len(payload) - 1))
            payload[at] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(payload)))
        mutated = blob[:4] + zlib.compress(bytes(payload[:cut]) + data.draw(st.binary(max_size=8)))
        try:
            restored = PartitionTracker.restore(mutated, topic=TOPIC, partition=PARTITION)
        except SnapshotError:
            return
        restored.tick(feed.now)  # whatever was accepted must be usable
        restored.observe(100, 100, Stamp("p", 1, 6), feed.now)

    @staticmethod
    def _older_format(blob: bytes, version: int, *, drop: tuple[str, ...] = ()) -> bytes:
        """``blob`` (version 5, a ring short of one sealed block: its entries are packed as
        version 4 packs them) rewritten as ``version``: the ring as ``ring_entries``, its
        arrays not shuffled below version 4, and the body fields in ``drop`` left out."""
        payload = zlib.decompress(blob[4:])
        (length,) = struct.unpack(">I", payload[:4])
        body = json.loads(payload[4 : 4 + length])
        for name in drop:
            del body[name]
        ring = payload[4 + length :]
        sealed = body.pop("ring")
        assert not sealed["blocks"]
        assert not sealed["phase"]
        count = body["ring_entries"] = sealed["hot"]
        if version == 4:
            raw = json.dumps(body).encode()
            return b"GWT\x04" + zlib.compress(struct.pack(">I", len(raw)) + raw + ring)
        columns = [ring[: 8 * count], ring[8 * count : 16 * count], ring[16 * count : 24 * count]]
        plain = b"".join(unshuffle_bytes(c, 8) for c in columns)
        plain += unshuffle_bytes(ring[24 * count :], 4)
        raw = json.dumps(body).encode()
        return b"GWT" + bytes([version]) + zlib.compress(struct.pack(">I", len(raw)) + raw + plain)

    def test_snapshot_version_2_is_still_read(self) -> None:
        """A version 2 snapshot (before R16 state existed) restores, with no skip marks."""
        feed = Feed()
        feed.run("p", 1, [0, 1, 5])
        blob = feed.tracker.snapshot()
        assert blob[3] == 5
        v2 = self._older_format(blob, 2, drop=("rebase", "doubtful"))
        restored = PartitionTracker.restore(v2, topic=TOPIC, partition=PARTITION)
        assert restored.gaps() == feed.tracker.gaps()
        assert restored.observe(3, 3, Stamp("p", 1, 6), feed.now) is NO_EVENTS

    def test_snapshot_version_3_is_still_read(self) -> None:
        """A version 3 snapshot (ring arrays not shuffled) restores to the same state,
        truncation ring included."""
        feed = Feed()
        feed.run("p", 1, [0, 1, 5, 6, 2])
        feed.run("q", 7, range(40))
        blob = feed.tracker.snapshot()
        restored = PartitionTracker.restore(
            self._older_format(blob, 3), topic=TOPIC, partition=PARTITION
        )
        assert restored.snapshot() == blob

    def test_snapshot_version_4_is_still_read(self) -> None:
        """A version 4 snapshot (the whole ring as packed arrays) restores to the same
        state, and is written again as the version of today."""
        feed = Feed()
        feed.run("p", 1, [0, 1, 5, 6, 2])
        blob = feed.tracker.snapshot()
        restored = PartitionTracker.restore(
            self._older_format(blob, 4), topic=TOPIC, partition=PARTITION
        )
        assert restored.snapshot() == blob

    @staticmethod
    def _wrapped(config: TrackerConfig) -> PartitionTracker:
        # Three producers taking turns, one of them with a hole and a reordered record,
        # past a full ring of 1,024 entries so that its oldest entry is inside a block.
        tracker = PartitionTracker(TOPIC, PARTITION, config=config)
        seqs = [0, 0, 0]
        for offset in range(2**40, 2**40 + 2_500):
            k = offset % 3
            seq = seqs[k] + (offset % 97 == 0)
            seqs[k] = seq + 1
            tracker.observe(offset, 1_700_000_000_000 + offset % 1_000, Stamp(f"p{k}", 1, seq), 1.0)
        return tracker

    def test_a_full_ring_restores_to_the_same_answers(self) -> None:
        """A ring of sealed blocks whose oldest entry lies inside a block restores with
        the same entries: the same probe, the same records named by a truncation deep in
        the ring, and the same bytes written again."""
        config = TrackerConfig(ring_size=1_024)
        tracker = self._wrapped(config)
        blob = tracker.snapshot()
        restored = PartitionTracker.restore(blob, topic=TOPIC, partition=PARTITION, config=config)
        assert restored.snapshot() == blob
        assert restored.verify_from() == tracker.verify_from() == 2**40 + 2_500 - 1_024
        assert restored.newest_read(2**40 + 2_000) == tracker.newest_read(2**40 + 2_000)
        assert restored.streams() == tracker.streams()
        cut = 2**40 + 1_700
        events = tracker.log_truncated(cut, 2.0)
        assert events
        assert restored.log_truncated(cut, 2.0) == events
        assert restored.counters.as_dict() == tracker.counters.as_dict()

    def test_a_full_ring_restores_into_a_smaller_ring(self) -> None:
        """Restored with a smaller ``ring_size``, the newest entries are kept."""
        tracker = self._wrapped(TrackerConfig(ring_size=1_024))
        restored = PartitionTracker.restore(
            tracker.snapshot(),
            topic=TOPIC,
            partition=PARTITION,
            config=TrackerConfig(ring_size=256),
        )
        assert restored.verify_from() == 2**40 + 2_500 - 256
        assert restored.newest_read() == tracker.newest_read()

    def test_damaged_sealed_blocks_are_refused(self) -> None:
        """A flipped byte or a cut in the sealed blocks raises SnapshotError."""
        config = TrackerConfig(ring_size=1_024)
        blob = self._wrapped(config).snapshot()
        for damaged in (blob[:-7], blob[:-300] + bytes([blob[-300] ^ 0x55]) + blob[-299:]):
            with pytest.raises(SnapshotError):
                PartitionTracker.restore(damaged, topic=TOPIC, partition=PARTITION, config=config)

    def test_snapshot_of_an_unknown_version_is_refused(self) -> None:
        """A newer writer's format is refused with SnapshotError naming the version."""
        blob = Feed().tracker.snapshot()
        with pytest.raises(SnapshotError, match="unknown snapshot version 9"):
            PartitionTracker.restore(b"GWT\x09" + blob[4:], topic=TOPIC, partition=PARTITION)

    def test_snapshot_of_another_partition_is_refused(self) -> None:
        """Restoring partition 3's state into partition 4 is an error, not a mix-up."""
        data = Feed().tracker.snapshot()
        with pytest.raises(SnapshotError, match="not orders/4"):
            PartitionTracker.restore(data, topic=TOPIC, partition=4)


class TestConfig:
    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"grace_period": -1}, "grace_period"),
            ({"grace_period": float("nan")}, "grace_period"),
            ({"ring_size": 1000}, "ring_size"),
            ({"max_streams": 0}, "max_streams"),
            ({"idle_eviction": 5.0, "grace_period": 10.0}, "idle_eviction"),
        ],
    )
    def test_invalid_settings_name_the_field(self, kwargs: dict[str, float], field: str) -> None:
        """Validation errors say which field is wrong."""
        with pytest.raises(TrackerConfigError) as info:
            TrackerConfig(**kwargs)  # type: ignore[arg-type]
        assert info.value.field == field

    def test_default_grace_matches_kafka_delivery_timeout(self) -> None:
        """The default grace is Kafka's default delivery.timeout.ms (120 s)."""
        assert TrackerConfig().grace_period == 120.0


def test_stamp_epoch_of_other_producer_does_not_interfere() -> None:
    """Streams of different producers are independent (a gap in one, not the other)."""
    t = PartitionTracker(TOPIC, PARTITION)
    t.observe(0, 0, Stamp("a", 1, 0), 0.0)
    t.observe(1, 0, Stamp("b", 1, 0), 0.0)
    events = t.observe(2, 0, Stamp("a", 1, 2), 0.0)
    assert [type(e) for e in events] == [GapOpened]
    assert t.observe(3, 0, Stamp("b", 1, 1), 0.0) is NO_EVENTS


class TestByteShuffle:
    @given(st.binary(max_size=400), st.sampled_from([1, 4, 8]))
    def test_unshuffle_inverts_shuffle(self, data: bytes, width: int) -> None:
        data = data[: len(data) - len(data) % width]
        shuffled = shuffle_bytes(data, width)
        assert len(shuffled) == len(data)
        assert unshuffle_bytes(shuffled, width) == data

    def test_values_are_grouped_by_byte_position(self) -> None:
        assert shuffle_bytes(b"\x01\x02\x03\x04\x05\x06", 2) == b"\x01\x03\x05\x02\x04\x06"
