"""Where a gap on a mirrored topic came from: rules O1-O6 of gapwatch.core.origin."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gapwatch.core.origin import Origin, Reason, SourceScan, decide_origin


def scan(
    found: set[int] | frozenset[int] = frozenset(),
    *,
    saw_before: bool = True,
    log_start: int = 0,
    scan_start: int = 0,
    hit_limit: bool = False,
) -> SourceScan:
    return SourceScan(frozenset(found), saw_before, log_start, scan_start, hit_limit)


class TestRules:
    def test_o1_every_missing_sequence_on_the_source_is_the_mirrors_loss(self) -> None:
        """All of 10..14 are in the source log: the mirror lost them."""
        decided = decide_origin(first_seq=10, last_seq=14, scan=scan(set(range(10, 15))))
        assert (decided.origin, decided.reason) == (Origin.MIRROR, Reason.IN_SOURCE)
        assert (decided.in_source, decided.not_in_source) == (5, 0)

    def test_o1_holds_even_when_the_record_before_is_gone(self) -> None:
        """Finding every missing record decides, whatever else the scan saw."""
        decided = decide_origin(
            first_seq=3, last_seq=4, scan=scan({3, 4}, saw_before=False, log_start=9)
        )
        assert decided.origin is Origin.MIRROR

    def test_o2_a_scan_stopped_at_its_limit_decides_nothing(self) -> None:
        decided = decide_origin(first_seq=10, last_seq=14, scan=scan({10}, hit_limit=True))
        assert (decided.origin, decided.reason) == (Origin.UNKNOWN, Reason.SCAN_LIMIT)

    def test_o3_some_on_the_source_is_mixed_with_both_counts(self) -> None:
        decided = decide_origin(first_seq=10, last_seq=14, scan=scan({10, 11}))
        assert (decided.origin, decided.reason) == (Origin.MIXED, Reason.PARTLY_IN_SOURCE)
        assert (decided.in_source, decided.not_in_source) == (2, 3)

    def test_o4_none_on_a_source_holding_the_record_before_is_lost_upstream(self) -> None:
        decided = decide_origin(first_seq=10, last_seq=14, scan=scan(log_start=5, scan_start=7))
        assert (decided.origin, decided.reason) == (Origin.SOURCE, Reason.NOT_IN_SOURCE)
        assert (decided.in_source, decided.not_in_source) == (0, 5)

    def test_o4_a_head_gap_on_a_never_cut_log_is_lost_upstream(self) -> None:
        """Sequence 0 has no record before it; a log never cut by retention held it."""
        decided = decide_origin(first_seq=0, last_seq=2, scan=scan(saw_before=False))
        assert decided.origin is Origin.SOURCE

    def test_o5_a_range_before_the_log_start_was_deleted_by_retention(self) -> None:
        decided = decide_origin(
            first_seq=10,
            last_seq=14,
            scan=scan(saw_before=False, log_start=120, scan_start=120),
        )
        assert (decided.origin, decided.reason) == (Origin.UNKNOWN, Reason.RETENTION)
        assert "offset 120" in decided.text
        assert decided.text.startswith("retention: ")

    def test_o5_also_when_part_of_the_range_survived(self) -> None:
        """The log start cut through the range: the rest cannot be told either."""
        decided = decide_origin(
            first_seq=10,
            last_seq=14,
            scan=scan({13, 14}, saw_before=False, log_start=120, scan_start=120),
        )
        assert decided.reason is Reason.RETENTION

    def test_o6_record_before_not_where_its_timestamp_says(self) -> None:
        decided = decide_origin(
            first_seq=10, last_seq=14, scan=scan(saw_before=False, log_start=0, scan_start=40)
        )
        assert (decided.origin, decided.reason) == (Origin.UNKNOWN, Reason.NOT_LOCATED)

    def test_found_sequences_outside_the_gap_do_not_count(self) -> None:
        decided = decide_origin(first_seq=10, last_seq=11, scan=scan({9, 12}))
        assert decided.origin is Origin.SOURCE


@given(
    first=st.integers(0, 1000),
    length=st.integers(1, 50),
    present=st.sets(st.integers(0, 49)),
    saw_before=st.booleans(),
    log_start=st.integers(0, 3),
    scan_start=st.integers(0, 5),
    hit_limit=st.booleans(),
)
def test_counts_add_up_and_the_origin_matches_a_simple_model(
    first: int,
    length: int,
    present: set[int],
    saw_before: bool,
    log_start: int,
    scan_start: int,
    hit_limit: bool,
) -> None:
    """Against a model: all present -> mirror; else a limited scan -> unknown; else a held
    range splits into mirror/source counts that add up to the gap; else unknown."""
    last = first + length - 1
    found = {first + p for p in present if p < length}
    decided = decide_origin(
        first_seq=first,
        last_seq=last,
        scan=SourceScan(frozenset(found), saw_before, log_start, scan_start, hit_limit),
    )
    held = saw_before or (first == 0 and log_start == 0)
    if len(found) == length:
        assert decided.origin is Origin.MIRROR
    elif hit_limit or not held:
        assert decided.origin is Origin.UNKNOWN
        assert decided.in_source == decided.not_in_source == 0
    else:
        assert decided.origin is (Origin.MIXED if found else Origin.SOURCE)
    if decided.origin is not Origin.UNKNOWN:
        assert decided.in_source == len(found)
        assert decided.in_source + decided.not_in_source == length
