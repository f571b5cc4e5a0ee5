"""The verifier's pure core: marks, the processed frontier and confirmation (V1-V5)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from gapwatch.core.config import TrackerConfig
from gapwatch.core.events import DuplicateRecords, GapConfirmed, GapOpened
from gapwatch.core.wire import encode_stamp
from gapwatch.verifier.config import VerifierConfig, VerifierConfigError
from gapwatch.verifier.ledger import ProcessedLedger, VerifiedPartition
from gapwatch.verifier.metrics import VerifierCollector, VerifierHealth
from gapwatch.verifier.store import checkpoint_partition

GRACE = 10.0
CONFIG = TrackerConfig(grace_period=GRACE, ring_size=64)


def mark(
    ledger: ProcessedLedger, part: VerifiedPartition, seq: int, *, offset: int, now: float
) -> list[object]:
    """Mark the record of ``seq`` (producer p, epoch 1) at ``offset`` processed."""
    return list(
        ledger.processed(
            part,
            offset=offset,
            timestamp_ms=1_000 + seq,
            headers=encode_stamp("p", 1, seq),
            now=now,
        )
    )


def fresh(start_offset: int | None = 0) -> tuple[ProcessedLedger, VerifiedPartition]:
    ledger = ProcessedLedger(CONFIG)
    return ledger, ledger.adopt("orders", 0, snapshot=None, start_offset=start_offset)


class TestMarks:
    def test_in_order_marks_count_records_and_advance_the_frontier(self) -> None:
        """V1, V2: consecutive marks raise no event; the frontier is one past the last."""
        ledger, part = fresh()
        for seq in range(5):
            assert mark(ledger, part, seq, offset=seq, now=1.0) == []
        assert part.counters.records == 5
        assert part.frontier == 5

    def test_a_skipped_run_opens_a_gap_of_exactly_those_sequences(self) -> None:
        """V1: records 3..6 never marked: one open gap 3..6 when 7 is marked."""
        ledger, part = fresh()
        for seq in range(3):
            mark(ledger, part, seq, offset=seq, now=1.0)
        (event,) = mark(ledger, part, 7, offset=7, now=2.0)
        assert isinstance(event, GapOpened)
        assert (event.gap.first_seq, event.gap.last_seq, event.gap.count) == (3, 6, 4)

    def test_processing_a_record_twice_is_counted_as_a_duplicate(self) -> None:
        """V1: a second mark of the same sequence is one duplicate, exactly."""
        ledger, part = fresh()
        for seq in range(4):
            mark(ledger, part, seq, offset=seq, now=1.0)
        events = mark(ledger, part, 2, offset=2, now=2.0)
        assert [type(e) for e in events] == [DuplicateRecords]
        assert part.counters.duplicates == 1

    def test_unstamped_and_malformed_records_only_count(self) -> None:
        """V1 (R15): no stamp, or a damaged one, changes nothing but a counter."""
        ledger, part = fresh()
        assert ledger.processed(part, offset=0, timestamp_ms=1, headers=None, now=1.0) == ()
        bad = [("gapwatch-producer", b"p"), ("gapwatch-epoch", b"x"), ("gapwatch-seq", b"1")]
        assert ledger.processed(part, offset=1, timestamp_ms=1, headers=bad, now=1.0) == ()
        assert (part.counters.unstamped, part.counters.malformed, part.counters.records) == (
            1,
            1,
            0,
        )


class TestConfirmation:
    def gap_at(self, now: float) -> tuple[ProcessedLedger, VerifiedPartition]:
        """Marks 0..2 and 7 (offsets = sequences): gap 3..6 opened at ``now``."""
        ledger, part = fresh()
        for seq in (0, 1, 2):
            mark(ledger, part, seq, offset=seq, now=now)
        mark(ledger, part, 7, offset=7, now=now)
        return ledger, part

    def test_no_confirmation_before_the_grace_period(self) -> None:
        """V3: caught up, but the gap is younger than its grace: still open."""
        ledger, part = self.gap_at(100.0)
        assert ledger.consumed(part, position=8, now=100.0 + GRACE - 1) == ()
        assert ledger.tick(100.0 + GRACE - 0.5) == []
        assert part.counters.open_gaps == 1

    def test_no_confirmation_while_the_application_has_unprocessed_records(self) -> None:
        """V3: handed up to offset 20 but processed only to 8: a stalled app confirms nothing."""
        ledger, part = self.gap_at(100.0)
        assert ledger.consumed(part, position=20, now=100.0 + GRACE + 1) == ()
        assert ledger.tick(100.0 + GRACE + 50) == []
        assert part.unprocessed == 12

    def test_confirmed_once_processed_past_what_was_handed_out_after_grace(self) -> None:
        """V3: the position seen after grace is processed past: confirmed, exact count."""
        ledger, part = self.gap_at(100.0)
        ledger.consumed(part, position=20, now=100.0 + GRACE + 1)
        for seq in range(8, 19):
            assert mark(ledger, part, seq, offset=seq, now=100.0 + GRACE + 2) == []
        # Offset 19 was handed out but is not processed yet: not caught up.
        assert ledger.consumed(part, position=20, now=100.0 + GRACE + 3) == ()
        mark(ledger, part, 19, offset=19, now=100.0 + GRACE + 4)
        (event,) = ledger.consumed(part, position=20, now=100.0 + GRACE + 5)
        assert isinstance(event, GapConfirmed)
        assert event.gap.count == 4
        assert part.counters.missing == 4

    def test_without_a_frontier_the_first_position_is_the_start(self) -> None:
        """V2, V4: no commit and no mark: the first position seen is where the app starts."""
        ledger, part = fresh(start_offset=None)
        assert part.frontier is None
        ledger.consumed(part, position=42, now=1.0)
        assert part.frontier == 42
        assert part.unprocessed == 0


class TestRestart:
    def test_state_survives_a_snapshot_and_counts_reprocessing_as_duplicates(self) -> None:
        """V2: restored from its snapshot, records processed again are duplicates."""
        ledger, part = fresh()
        for seq in range(10):
            mark(ledger, part, seq, offset=seq, now=1.0)
        blob = part.tracker.snapshot()
        again = ProcessedLedger(CONFIG)
        # The application resumes at its committed offset 6: 6..9 come again.
        restored = again.adopt("orders", 0, snapshot=blob, start_offset=6)
        assert restored.restored_from == "checkpoint"
        assert restored.frontier == 6
        for seq in range(6, 12):
            mark(again, restored, seq, offset=seq, now=2.0)
        assert restored.counters.duplicates == 4
        assert restored.counters.open_gaps == 0

    def test_records_skipped_across_a_restart_are_a_gap(self) -> None:
        """V2: resumed past records never processed: the next mark opens a gap over them."""
        ledger, part = fresh()
        for seq in range(5):
            mark(ledger, part, seq, offset=seq, now=1.0)
        again = ProcessedLedger(CONFIG)
        restored = again.adopt("orders", 0, snapshot=part.tracker.snapshot(), start_offset=9)
        (event,) = mark(again, restored, 9, offset=9, now=2.0)
        assert isinstance(event, GapOpened)
        assert (event.gap.first_seq, event.gap.last_seq) == (5, 8)

    def test_a_damaged_snapshot_starts_fresh_and_says_why(self) -> None:
        """A snapshot that cannot be restored gives a fresh tracker, named as damaged."""
        ledger = ProcessedLedger(CONFIG)
        part = ledger.adopt("orders", 0, snapshot=b"GWT\x02garbage", start_offset=3)
        assert part.restored_from.startswith("damaged: ")
        assert part.counters.records == 0

    def test_a_checkpoint_is_due_after_any_change_and_not_after_writing_it(self) -> None:
        """V5: a mark makes the partition due; recording the written version clears it."""
        ledger, part = fresh()
        assert not part.needs_checkpoint
        mark(ledger, part, 0, offset=0, now=1.0)
        assert part.needs_checkpoint
        part.checkpointed_version = part.version
        assert not part.needs_checkpoint


class TestCollector:
    def scrape(self, ledger: ProcessedLedger, health: VerifierHealth | None = None) -> str:
        registry = CollectorRegistry()
        registry.register(VerifierCollector("billing", ledger, health or VerifierHealth()))
        return generate_latest(registry).decode()

    def test_series_carry_the_group_and_exist_at_zero_from_adoption(self) -> None:
        """Every per-partition series is there, at 0, with a group label, before any mark."""
        ledger, _ = fresh()
        text = self.scrape(ledger)
        labels = '{group="billing",partition="0",topic="orders"}'
        assert f"gapwatch_missing_records_total{labels} 0.0" in text
        assert f"gapwatch_duplicate_records_total{labels} 0.0" in text
        assert 'gapwatch_verifier_partitions{group="billing"} 1.0' in text

    def test_values_follow_the_trackers_and_health(self) -> None:
        """A duplicate and a checkpoint show up in the next scrape."""
        ledger, part = fresh()
        mark(ledger, part, 0, offset=0, now=1.0)
        mark(ledger, part, 0, offset=0, now=1.0)
        text = self.scrape(ledger, VerifierHealth(checkpoints=3))
        labels = '{group="billing",partition="0",topic="orders"}'
        assert f"gapwatch_duplicate_records_total{labels} 1.0" in text
        assert f"gapwatch_records_total{labels} 2.0" in text
        assert 'gapwatch_verifier_checkpoints_total{group="billing"} 3.0' in text


class TestConfig:
    def test_defaults_are_valid(self) -> None:
        """A group and servers are all a config needs."""
        config = VerifierConfig(group_id="billing", bootstrap_servers="127.0.0.1:9092")
        assert config.tracker.ring_size == 1024

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"group_id": " "}, "group_id"),
            ({"bootstrap_servers": ()}, "bootstrap_servers"),
            ({"checkpoint_interval": 0}, "checkpoint_interval"),
            ({"tick_interval": float("nan")}, "tick_interval"),
            ({"timeout": True}, "timeout"),
        ],
    )
    def test_a_bad_value_names_its_field(self, changes: dict[str, object], field: str) -> None:
        """Validation raises VerifierConfigError naming the field, before any connection."""
        values: dict[str, object] = {"group_id": "g", "bootstrap_servers": "h:1", **changes}
        with pytest.raises(VerifierConfigError) as error:
            VerifierConfig(**values)  # type: ignore[arg-type]
        assert error.value.field == field


class TestCheckpointPartition:
    def test_is_stable_and_within_the_topic(self) -> None:
        """The key's partition is a pure function of (group, topic, partition, count)."""
        chosen = {checkpoint_partition("g", "orders", p, 6) for p in range(64)}
        assert chosen <= set(range(6))
        assert len(chosen) > 1, "keys spread over the partitions"
        assert checkpoint_partition("g", "orders", 5, 6) == checkpoint_partition(
            "g", "orders", 5, 6
        )
