"""The monitor's record path against the reference: parse_stamp, then observe, per record."""

from __future__ import annotations

from typing import Any

from aiokafka.structs import ConsumerRecord
from hypothesis import given
from hypothesis import strategies as st

from gapwatch.core.events import Event
from gapwatch.core.stamps import StampReader
from gapwatch.core.tracker import PartitionTracker
from gapwatch.core.wire import encode_stamp, parse_stamp
from gapwatch.errors import MalformedStampError
from gapwatch.monitor.ingest.recordpath import feed_records
from gapwatch.monitor.state.latency import LatencyHistogram

NOW = 1_700_000_000.0
STAMPED = st.builds(
    lambda producer, seq: list(encode_stamp(producer, 1, seq)),
    st.sampled_from(["p1", "p2"]),
    st.integers(0, 40),
)
ODD = st.lists(
    st.tuples(
        st.sampled_from(["gapwatch-producer", "gapwatch-epoch", "gapwatch-seq", "x"]),
        st.one_of(st.none(), st.binary(max_size=6), st.sampled_from([b"p1", b"1", b"7"])),
    ),
    max_size=4,
)


def record(offset: int, headers: Any, timestamp: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("t", 0, offset, timestamp, 0, None, b"v", None, 1, 1, headers)


def reference(records: list[ConsumerRecord[bytes, bytes]]) -> tuple[list[Event], PartitionTracker]:
    tracker = PartitionTracker("t", 0)
    events: list[Event] = []
    for r in records:
        try:
            stamp = parse_stamp(r.headers)
        except MalformedStampError as exc:
            tracker.observe_malformed(exc.reason)
            continue
        if stamp is None:
            tracker.observe_unstamped()
        else:
            events.extend(tracker.observe(r.offset, r.timestamp, stamp, NOW))
    return events, tracker


class TestFeedRecords:
    @given(st.lists(st.one_of(STAMPED, ODD), max_size=30), st.integers(1, 7))
    def test_same_decisions_as_parse_stamp_and_observe(
        self, header_lists: list[Any], batch: int
    ) -> None:
        """Any mix of stamped, unstamped and malformed records, in any batch sizes: the
        same events and counters as the reference path, one latency per record."""
        records = [record(o, h, 1_699_999_999_000 + o) for o, h in enumerate(header_lists)]
        expected_events, expected = reference(records)
        tracker, stamps, latency = PartitionTracker("t", 0), StampReader(), LatencyHistogram()
        events: list[Event] = []
        last = None
        for start in range(0, len(records), batch):
            chunk = records[start : start + batch]
            last = feed_records(
                chunk, tracker=tracker, stamps=stamps, latency=latency, now=NOW, events=events
            )
        assert events == expected_events
        assert tracker.counters.as_dict() == expected.counters.as_dict()
        assert sum(latency.counts) == len(records)
        assert last is (records[-1] if records else None)

    def test_latency_is_bucketed_and_clock_skew_counted(self) -> None:
        """1 s old lands in the 1.0 bucket; a record from the future counts as 0 s, skewed."""
        latency = LatencyHistogram()
        records = [
            record(0, list(encode_stamp("p", 1, 0)), int(NOW * 1000) - 1000),
            record(1, list(encode_stamp("p", 1, 1)), int(NOW * 1000) + 5000),
        ]
        feed_records(
            records,
            tracker=PartitionTracker("t", 0),
            stamps=StampReader(),
            latency=latency,
            now=NOW,
            events=[],
        )
        assert latency.clock_skewed == 1
        assert latency.total == 1.0
        buckets = dict(latency.cumulative())
        assert (buckets["0.005"], buckets["0.5"], buckets["1.0"]) == (1.0, 1.0, 2.0)

    def test_without_a_latency_histogram_the_same_decisions(self) -> None:
        """``gapwatch audit`` passes no histogram: the tracker sees the same records."""
        headers = [list(encode_stamp("p", 1, s)) for s in (0, 1, 3, 2, 5)] + [None]
        records = [record(o, h, 1_699_999_999_000 + o) for o, h in enumerate(headers)]
        expected_events, expected = reference(records)
        tracker, events = PartitionTracker("t", 0), []
        last = feed_records(
            records, tracker=tracker, stamps=StampReader(), latency=None, now=NOW, events=events
        )
        assert events == expected_events
        assert tracker.counters.as_dict() == expected.counters.as_dict()
        assert last is records[-1]
