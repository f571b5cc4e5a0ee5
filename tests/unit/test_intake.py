"""The one parse-and-observe function shared by the monitor, ``gapwatch audit`` and the verifier."""

from __future__ import annotations

from gapwatch.core.config import TrackerConfig
from gapwatch.core.intake import observe_record
from gapwatch.core.stamps import StampReader
from gapwatch.core.tracker import PartitionTracker
from gapwatch.core.wire import encode_stamp

NOW = 1_700_000_000.0


def tracker() -> PartitionTracker:
    return PartitionTracker("t", 0, config=TrackerConfig(grace_period=100))


class TestObserveRecord:
    def test_stamped_records_reach_the_tracker(self) -> None:
        """A stamped record is observed; a jump in sequence opens a gap."""
        t = tracker()
        for offset, seq in enumerate([0, 1, 3]):
            headers = list(encode_stamp("p", 1, seq))
            events = observe_record(t, offset=offset, timestamp_ms=1, headers=headers, now=NOW)
        assert t.counters.records == 3
        assert len(events) == 1
        assert t.counters.open_gaps == 1

    def test_unstamped_and_malformed_are_only_counted(self) -> None:
        """No gapwatch headers counts unstamped, damaged ones malformed; neither is an event."""
        t = tracker()
        assert observe_record(t, offset=0, timestamp_ms=1, headers=None, now=NOW) == ()
        damaged = [("gapwatch-producer", b"p"), ("gapwatch-epoch", b"x"), ("gapwatch-seq", b"1")]
        assert observe_record(t, offset=1, timestamp_ms=1, headers=damaged, now=NOW) == ()
        assert (t.counters.records, t.counters.unstamped, t.counters.malformed) == (0, 1, 1)

    def test_a_stamp_reader_gives_the_same_results(self) -> None:
        """With the monitor's cached StampReader the tracker ends in the same state."""
        records = [list(encode_stamp("p", 1, seq)) for seq in (0, 2, 1, 5)] + [None]
        plain, cached, reader = tracker(), tracker(), StampReader()
        for offset, headers in enumerate(records):
            observe_record(plain, offset=offset, timestamp_ms=1, headers=headers, now=NOW)
            observe_record(
                cached,
                offset=offset,
                timestamp_ms=1,
                headers=headers,
                now=NOW,
                read_stamp=reader.read,
            )
        assert cached.counters.as_dict() == plain.counters.as_dict()
        assert list(cached.gaps()) == list(plain.gaps())

    def test_a_damaged_stamp_is_reported_with_its_offset_and_reason(self) -> None:
        """``on_malformed`` hears which record was damaged and why, after it was counted."""
        t = tracker()
        heard: list[tuple[int, str, int]] = []
        damaged = [("gapwatch-producer", b"p"), ("gapwatch-epoch", b"1")]
        observe_record(
            t,
            offset=7,
            timestamp_ms=1,
            headers=damaged,
            now=NOW,
            on_malformed=lambda offset, reason: heard.append(
                (offset, reason, t.counters.malformed)
            ),
        )
        observe_record(t, offset=8, timestamp_ms=1, headers=None, now=NOW, on_malformed=None)
        assert heard == [(7, "missing gapwatch-seq", 1)]
