"""Gaps encoded once for /gaps: same bytes as encoding afresh, never a stale version."""

from __future__ import annotations

import dataclasses
import json

from monitor_factories import make_gap

from gapwatch.core.model import GapState
from gapwatch.gaps.encoding import GapEncoder, encode_json, owned_json


def test_page_is_the_json_of_the_owned_gaps() -> None:
    """The assembled page parses to what encoding the whole body at once gives."""
    gaps = [make_gap(seq, opened_at=1_700_000_000.5 + seq, producer="p-é") for seq in range(5)]
    items = [(gap, f"i-{gap.first_seq % 2}") for gap in gaps]
    body = GapEncoder().page(items, "cursor-1")
    expected = {"gaps": [owned_json(g, o) for g, o in items], "next_cursor": "cursor-1"}
    assert json.loads(body) == expected
    assert body == encode_json(expected)


def test_empty_page_and_no_cursor() -> None:
    assert json.loads(GapEncoder().page([], None)) == {"gaps": [], "next_cursor": None}


def test_a_new_version_of_a_gap_is_encoded_afresh() -> None:
    """A state change makes a new Gap object; the cache must not serve the old bytes."""
    encoder = GapEncoder()
    gap = make_gap(3, opened_at=1_700_000_000.0)
    assert json.loads(encoder.encode(gap, "i-1"))["state"] == "open"
    confirmed = dataclasses.replace(gap, state=GapState.CONFIRMED, confirmed_at=1_700_000_120.0)
    assert json.loads(encoder.encode(confirmed, "i-1"))["state"] == "confirmed"
    assert json.loads(encoder.encode(gap, "i-2"))["instance"] == "i-2"


def test_repeated_requests_reuse_the_encoded_bytes() -> None:
    encoder = GapEncoder()
    gap = make_gap(1, opened_at=1_700_000_000.0)
    assert encoder.encode(gap, "i") is encoder.encode(gap, "i")


def test_capacity_bounds_the_cache_and_answers_stay_right() -> None:
    encoder = GapEncoder(capacity=3)
    gaps = [make_gap(seq, opened_at=1_700_000_000.0 + seq) for seq in range(10)]
    for gap in gaps:
        assert json.loads(encoder.encode(gap, "i"))["first_seq"] == gap.first_seq
    assert len(encoder) <= 3


def test_a_new_version_replaces_the_cached_bytes_of_its_gap() -> None:
    """One entry per gap id: old versions of a gap do not pile up in the cache."""
    encoder = GapEncoder()
    gap = make_gap(3, opened_at=1_700_000_000.0)
    encoder.page([(gap, "i")], None)
    confirmed = dataclasses.replace(gap, state=GapState.CONFIRMED, confirmed_at=1_700_000_120.0)
    body = json.loads(encoder.page([(confirmed, "i")], None))
    assert body["gaps"][0]["state"] == "confirmed"
    encoder.page([(confirmed, "i")], None)
    assert len(encoder) == 1


def test_the_cache_keeps_what_the_last_two_pages_used() -> None:
    """A gap that left the polled page (evicted from the store, or pushed down by newer
    gaps) is let go two pages later, so the cache does not grow with every gap ever
    served; a gap on both pages keeps its bytes."""
    encoder = GapEncoder()
    gaps = [make_gap(seq, opened_at=1_700_000_000.0 + seq) for seq in range(30)]
    first = encoder.encode(gaps[0], "i")
    for start in range(0, 21, 5):
        encoder.page([(gap, "i") for gap in gaps[start : start + 10]], None)
        assert len(encoder) <= 15
    assert encoder.encode(gaps[20], "i") is encoder.encode(gaps[20], "i")
    assert encoder.encode(gaps[0], "i") is not first
    assert encoder.encode(gaps[0], "i") == first
