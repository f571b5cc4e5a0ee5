"""The tracker's state objects on their own: each owns its data and keeps it consistent."""

from __future__ import annotations

import pytest

from gapwatch.core.counters import TrackerCounters
from gapwatch.core.gapbook import GapBook
from gapwatch.core.model import GapCause, GapState, ProducerReport, StreamKey, gap_id
from gapwatch.core.progress import MAX_PENDING_HWM, ReadProgress
from gapwatch.core.report_codec import ReportDecodeError, validate_report
from gapwatch.core.report_ledger import (
    MAX_ORPHAN_REPORTS,
    OrphanClaim,
    ReportLedger,
    StreamClaim,
    split_told,
)
from gapwatch.core.ring import BLOCK_SIZE, Ring, SealedBlock
from gapwatch.core.stream import Stream
from gapwatch.core.streamtable import StreamTable
from gapwatch.core.wire import Stamp

KEY = StreamKey("orders", 3, "p", 1)


def _report(**fields: object) -> ProducerReport:
    values: dict[str, object] = {
        "producer": "p",
        "epoch": 1,
        "topic": "orders",
        "partition": 3,
        "highest_assigned": 9,
        "highest_acked": 9,
    }
    values.update(fields)
    return ProducerReport(**values)  # type: ignore[arg-type]


def _write(ring: Ring, offset: int, st: Stream | None, seq: int, ts: int) -> None:
    # What the tracker's hot path does for one record.
    ring.write(offset, st, seq, ts)


class TestRing:
    def test_an_empty_ring_verifies_nothing(self) -> None:
        """With nothing read there is no offset to verify from and no probe."""
        ring = Ring(8)
        assert ring.verify_from() is None
        assert ring.newest_read() is None

    def test_a_wrapped_ring_no_longer_finds_an_overwritten_record(self) -> None:
        """A stream's newest record is found while the ring holds it, and not after."""
        ring = Ring(4)
        st = Stream("p", 1, 0, 100, 0.0)
        _write(ring, 100, st, 0, 5_000)
        assert ring.high_record_ts(st) == 5_000
        for k in range(4):
            _write(ring, 101 + k, None, k, 6_000 + k)
        assert ring.high_record_ts(st) is None
        # R8's stand-in: the oldest record the ring still holds.
        assert ring.reset_reference_ts(st) == 6_000

    def test_rewind_forgets_the_truncated_entries(self) -> None:
        """After a rewind the newest entry is the one before the cut."""
        ring = Ring(8)
        st = Stream("p", 1, 0, 0, 0.0)
        for offset in range(5):
            _write(ring, offset, st, offset, offset)
        j = ring.first_at_or_above(3)
        assert ring.gone_sequences(j) == {st: {3, 4}}
        ring.rewind(j)
        assert ring.newest_read() == (2, Stamp("p", 1, 2))
        assert ring.records() == 5  # read is read: the counter does not go back

    def test_sealed_blocks_answer_as_the_newest_block_does(self) -> None:
        """Records that moved out of the newest block into sealed blocks are still found,
        named on truncation and restored exactly (large offsets, sequences, timestamps;
        records of no stream), and a rewind deep into a sealed block reads on from it."""
        ring = Ring(4 * BLOCK_SIZE)
        streams = [Stream(f"p{k}", 1, 0, 0, 0.0) for k in range(3)]
        entries = []
        for k in range(3 * BLOCK_SIZE + 10):
            st = None if k % 7 == 0 else streams[k % 3]
            entry = (2**40 + 3 * k, st, 2**63 + k, 1_700_000_000_000 + k // 5)
            entries.append(entry)
            ring.write(*entry)
        old = streams[1]
        old.high, old.high_offset = 2**63 + 4, 2**40 + 12  # entry 4, in the oldest block
        assert ring.high_record_ts(old) == 1_700_000_000_000
        window = ring.window()
        assert list(zip(window[0], window[3], window[1], window[2], strict=True)) == entries
        j = ring.first_at_or_above(2**40 + 3 * 100)
        assert j == 100
        gone = ring.gone_sequences(j)
        assert gone[streams[0]] == {e[2] for e in entries[100:] if e[1] is streams[0]}
        ring.rewind(j)
        ring.write(2**40 + 300, streams[2], 7, 9)
        assert ring.newest_read() == (2**40 + 300, Stamp("p2", 1, 7))
        assert ring.window()[0] == [e[0] for e in entries[:100]] + [2**40 + 300]
        assert ring.records() == len(entries) + 1

    @pytest.mark.parametrize(
        ("offsets", "owners"),
        [
            (range(2**40, 2**40 + 256), "one"),  # consecutive offsets, one stream
            (range(5, 5 + 3 * 256, 3), "one"),  # offsets with holes, one stream
            (range(2**40, 2**40 + 256), "mixed"),  # three streams and records of none
        ],
        ids=["consecutive-one-stream", "holes-one-stream", "mixed"],
    )
    def test_a_sealed_block_keeps_every_value_and_survives_its_bytes(
        self, offsets: range, owners: str
    ) -> None:
        """A sealed block gives back exactly the columns it was sealed from, however few
        bytes it keeps, and so does a block rebuilt from :meth:`SealedBlock.to_bytes`."""
        streams = [Stream(f"p{k}", 1, 0, 0, 0.0) for k in range(3)]
        count = len(offsets)
        columns = (
            list(offsets),
            [2**64 - 1 - k // 3 for k in range(count)],
            [1_700_000_000_000 + (k * 7) % 50 for k in range(count)],
            [streams[0]] * count
            if owners == "one"
            else [None if k % 5 == 0 else streams[k % 3] for k in range(count)],
        )
        block = SealedBlock.seal(0, *columns)
        assert block.columns() == columns
        table = block.streams
        assert SealedBlock.from_bytes(0, count, block.to_bytes(), table).columns() == columns
        with pytest.raises(ValueError, match="block stream"):
            SealedBlock.from_bytes(0, count, block.to_bytes(), table[:-1])


class TestStreamTable:
    def test_forgetting_a_stream_forgets_its_baseline_and_skip_mark(self) -> None:
        """One call drops everything the table and the stream keep beyond progress."""
        table = StreamTable()
        st = Stream("p", 1, 7, 0, 0.0)
        table.start(st)
        table.set_baseline(st, 7, 0.0)
        table.mark_skip(41)
        table.forget(st)
        assert st.baseline is None
        assert st.skip_mark is None
        assert not table.has_baselines()

    def test_the_cap_evicts_retired_epochs_first(self) -> None:
        """Least recently seen first, retired epochs before current streams."""
        table = StreamTable()
        old = Stream("p", 1, 0, 0, 50.0)
        table.retire(old)
        table.start(Stream("p", 2, 0, 1, 10.0))
        table.start(Stream("q", 1, 0, 2, 20.0))
        assert table.evict_for_cap(3) == [old]  # room for one more below the cap of 3
        assert len(table) == 2

    def test_settled_baselines_are_dropped(self) -> None:
        """Only baselines whose first sight is settled go."""
        table = StreamTable()
        early, late = Stream("p", 1, 5, 0, 0.0), Stream("q", 1, 5, 1, 0.0)
        table.set_baseline(early, 5, 10.0)
        table.set_baseline(late, 5, 90.0)
        table.drop_settled_baselines(lambda since: since < 50.0)
        assert early.baseline is None
        assert late.baseline == (5, 90.0)
        assert table.with_baseline() == [late]


class TestGapBook:
    def test_new_gap_has_the_stable_id_and_a_confirmation_time_only_if_confirmed(self) -> None:
        """The one factory derives the id from the stream, first sequence and cause."""
        book = GapBook(TrackerCounters(), max_tracked=10, max_closed=10)
        gap = book.new_gap(
            KEY, 4, 6, state=GapState.OPEN, cause=GapCause.SEQUENCE, opened_at=1.0, now=1.0
        )
        assert gap.id == gap_id(KEY, 4, cause=GapCause.SEQUENCE)
        assert (gap.count, gap.confirmed_at) == (3, None)
        confirmed = book.new_gap(
            KEY, 4, 6, state=GapState.CONFIRMED, cause=GapCause.TAIL, opened_at=1.0, now=2.0
        )
        assert confirmed.confirmed_at == 2.0

    def test_a_gap_open_at_a_skip_closes_unknown_and_is_counted(self) -> None:
        """R16: the book marks open gaps at a skip and closes them unknown."""
        counters = TrackerCounters()
        book = GapBook(counters, max_tracked=10, max_closed=10)
        st = Stream("p", 1, 9, 9, 0.0)
        gap = book.new_gap(
            KEY, 4, 6, state=GapState.OPEN, cause=GapCause.SEQUENCE, opened_at=1.0, now=1.0
        )
        book.add(gap, st)
        book.mark_open_at_skip()
        assert book.was_open_at_skip(gap.id)
        done = book.close_unknown(gap, 5.0)
        assert done.state is GapState.UNKNOWN
        assert (counters.open_gaps, counters.gaps_unknown) == (0, 1)
        assert st.ranges == []


class TestReportLedger:
    def test_orphans_mature_before_stream_claims(self) -> None:
        """Claims come back in a fixed order: orphans, then each stream's claims."""
        ledger = ReportLedger(TrackerCounters())
        st = Stream("p", 1, 3, 0, 0.0)
        ledger.queue(st, _report(highest_acked=8), 1.0)
        ledger.hold_orphan(_report(producer="q"), 2.0)
        claims = list(ledger.matured(10.0, 100.0, lambda since: True))
        assert [type(c) for c in claims] == [OrphanClaim, StreamClaim]
        assert not ledger.has_claims()

    def test_a_full_ledger_counts_further_orphans_unmatched(self) -> None:
        """Untrusted reports cannot grow the ledger without bound."""
        counters = TrackerCounters()
        ledger = ReportLedger(counters)
        for k in range(MAX_ORPHAN_REPORTS + 1):
            ledger.hold_orphan(_report(producer=f"p{k}"), 0.0)
        assert counters.reports_unmatched == 1

    def test_split_told_cuts_a_range_into_told_and_silent_runs(self) -> None:
        """Adjacent told ranges make one run."""
        assert split_told([(3, 4), (5, 5)], 0, 7) == [(0, 2, False), (3, 5, True), (6, 7, False)]


class TestReadProgress:
    def test_only_a_watermark_read_after_the_grace_settles(self) -> None:
        """R11: time alone does not settle a fact; a later watermark read does."""
        progress = ReadProgress(10.0)
        assert not progress.is_settled(0.0, 100.0)
        progress.note(read_offset=5, high_watermark=9, observed_at=20.0)
        assert not progress.is_settled(0.0, 100.0)
        progress.note(read_offset=9, high_watermark=9, observed_at=15.0)
        assert progress.is_settled(0.0, 100.0)

    def test_pending_watermarks_are_bounded(self) -> None:
        """Only the newest observations are remembered."""
        progress = ReadProgress(1.0)
        for k in range(MAX_PENDING_HWM + 5):
            progress.note(read_offset=0, high_watermark=10 + k, observed_at=float(k))
        assert len(progress.pending) == MAX_PENDING_HWM


class TestValidateReport:
    @pytest.mark.parametrize(
        "fields",
        [
            {"epoch": True},
            {"epoch": -1},
            {"highest_acked": 2**64},
            {"failed": [(1, 2)]},
            {"failed": ((3, 2),)},
            {"producer": 7},
        ],
    )
    def test_a_report_with_a_bad_field_is_refused(self, fields: dict[str, object]) -> None:
        """The one check of a report's fields, shared by the decoder and the tracker."""
        with pytest.raises(ReportDecodeError):
            validate_report(_report(**fields))

    def test_a_well_formed_report_passes(self) -> None:
        """Nothing is raised for a report a producer could send."""
        validate_report(_report(failed=((1, 2),)))
