"""The gap store: latest state per id, newest-first pages with a cursor, bounded history."""

from __future__ import annotations

import dataclasses

import pytest
from monitor_factories import make_gap

from gapwatch.core.events import (
    GapConfirmed,
    GapHealed,
    GapJoined,
    GapOpened,
    GapSplit,
    GapTold,
    RecordsSkipped,
)
from gapwatch.core.model import GapState
from gapwatch.gaps.store import BadCursorError, GapQuery, GapStore


def store(**kwargs: float) -> GapStore:
    return GapStore(
        closed_retention=kwargs.get("retention", 3600.0),
        closed_limit=int(kwargs.get("limit", 100)),
    )


class TestEvents:
    def test_latest_state_replaces_earlier_one(self) -> None:
        """A confirmed event replaces the open record of the same id."""
        gaps = store()
        opened = make_gap(5, opened_at=10.0)
        gaps.handle([GapOpened(opened)], now=10.0)
        confirmed = dataclasses.replace(opened, state=GapState.CONFIRMED, updated_at=50.0)
        gaps.handle([GapConfirmed(confirmed)], now=50.0)
        assert gaps.get(opened.id) == confirmed
        assert len(gaps) == 1
        assert gaps.open_count() == 0

    def test_split_stores_both_pieces(self) -> None:
        """A split keeps the left id and adds the right piece."""
        gaps = store()
        whole = make_gap(5, last_seq=9, opened_at=1.0)
        gaps.handle([GapOpened(whole)], now=1.0)
        left = dataclasses.replace(whole, last_seq=6, count=2)
        right = make_gap(8, last_seq=9, opened_at=1.0)
        gaps.handle([GapSplit(left, right, seq=7)], now=2.0)
        assert gaps.get(whole.id) == left
        assert gaps.get(right.id) == right
        assert gaps.open_count() == 2

    def test_join_keeps_the_joined_gap_and_drops_the_absorbed_piece(self) -> None:
        """Two open told pieces joined again (R12): one gap with the left id remains."""
        gaps = store()
        left = dataclasses.replace(make_gap(5, last_seq=6, opened_at=1.0), producer_told=True)
        right = dataclasses.replace(make_gap(7, last_seq=9, opened_at=1.0), producer_told=True)
        gaps.handle([GapOpened(left), GapOpened(right)], now=1.0)
        joined = dataclasses.replace(left, last_seq=9, count=5, updated_at=2.0)
        gaps.handle([GapJoined(joined, right)], now=2.0)
        assert gaps.get(left.id) == joined
        assert gaps.get(right.id) is None
        assert (len(gaps), gaps.open_count()) == (1, 1)

    def test_told_replaces_the_gap_in_place(self) -> None:
        """A later report telling a whole open gap (GapTold) is what /gaps shows at once."""
        gaps = store()
        opened = make_gap(5, last_seq=9, opened_at=1.0)
        gaps.handle([GapOpened(opened)], now=1.0)
        told = dataclasses.replace(opened, producer_told=True, updated_at=3.0)
        gaps.handle([GapTold(told)], now=3.0)
        assert gaps.get(opened.id) == told
        assert gaps.open_count() == 1

    def test_skipped_ranges_are_kept(self) -> None:
        """RecordsSkipped events land in the skipped list."""
        gaps = store()
        skip = RecordsSkipped("t", 0, 0, 9, 10, at=5.0)
        gaps.handle([skip], now=5.0)
        assert gaps.skipped == [skip]

    def test_forget_open_keeps_closed_history(self) -> None:
        """Revoking a partition drops its open gaps only."""
        gaps = store()
        gaps.put(make_gap(1, opened_at=1.0))
        healed = make_gap(9, opened_at=2.0, state=GapState.HEALED)
        gaps.put(healed)
        gaps.put(make_gap(3, opened_at=3.0, partition=1))
        assert gaps.forget_open("t", 0) == 1
        assert gaps.get(healed.id) == healed
        assert len(gaps) == 2


class TestRetention:
    def test_closed_gaps_expire_after_retention(self) -> None:
        """Closed gaps older than the retention go; open gaps never do."""
        gaps = store(retention=100.0)
        old_open = make_gap(1, opened_at=0.0)
        old_closed = make_gap(2, opened_at=0.0, state=GapState.HEALED)
        gaps.handle([GapOpened(old_open), GapHealed(old_closed)], now=0.0)
        gaps.expire(now=99.0)
        assert len(gaps) == 2
        gaps.expire(now=101.0)
        assert gaps.get(old_closed.id) is None
        assert gaps.get(old_open.id) == old_open
        assert gaps.evicted == 1

    def test_closed_gaps_are_capped_oldest_first(self) -> None:
        """Beyond closed_limit, the oldest closed gaps are evicted."""
        gaps = store(limit=3)
        for seq in range(5):
            gaps.handle(
                [GapHealed(make_gap(seq, opened_at=float(seq), state=GapState.HEALED))],
                now=float(seq),
            )
        remaining = sorted(g.first_seq for g in gaps.query(GapQuery(), limit=10).gaps)
        assert remaining == [2, 3, 4]


class TestQuery:
    def fill(self, gaps: GapStore, count: int) -> None:
        for seq in range(count):
            gaps.put(make_gap(seq, opened_at=1000.0 + seq, partition=seq % 2))

    def test_newest_first_with_cursor_covers_everything_once(self) -> None:
        """Paging with the cursor visits every gap once, newest first."""
        gaps = store()
        self.fill(gaps, 25)
        seen: list[int] = []
        cursor: str | None = None
        for _ in range(10):
            page = gaps.query(GapQuery(), limit=7, cursor=cursor)
            seen.extend(g.first_seq for g in page.gaps)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == list(range(24, -1, -1))

    def test_cursor_stays_valid_when_new_gaps_arrive(self) -> None:
        """Gaps added between pages do not shift or repeat later pages."""
        gaps = store()
        self.fill(gaps, 10)
        first = gaps.query(GapQuery(), limit=5)
        gaps.put(make_gap(100, opened_at=5000.0))
        assert first.next_cursor is not None
        second = gaps.query(GapQuery(), limit=5, cursor=first.next_cursor)
        assert [g.first_seq for g in second.gaps] == [4, 3, 2, 1, 0]
        assert second.next_cursor is None

    def test_filters(self) -> None:
        """topic, partition, producer, state and since all narrow the result."""
        gaps = store()
        self.fill(gaps, 6)
        gaps.put(make_gap(50, opened_at=1.0, topic="u", producer="q", state=GapState.CONFIRMED))
        assert [g.first_seq for g in gaps.query(GapQuery(topic="u"), limit=9).gaps] == [50]
        assert len(gaps.query(GapQuery(partition=1), limit=9).gaps) == 3
        assert [g.first_seq for g in gaps.query(GapQuery(producer="q"), limit=9).gaps] == [50]
        confirmed = GapQuery(states=frozenset({GapState.CONFIRMED}))
        assert [g.first_seq for g in gaps.query(confirmed, limit=9).gaps] == [50]
        recent = gaps.query(GapQuery(since=1004.0), limit=9).gaps
        assert [g.first_seq for g in recent] == [5, 4]

    def test_update_in_place_keeps_order(self) -> None:
        """Updating a gap after a query keeps the order and shows the new state."""
        gaps = store()
        self.fill(gaps, 3)
        gaps.query(GapQuery(), limit=10)
        middle = gaps.query(GapQuery(), limit=10).gaps[1]
        gaps.put(dataclasses.replace(middle, state=GapState.CONFIRMED, updated_at=9999.0))
        page = gaps.query(GapQuery(), limit=10).gaps
        assert [g.first_seq for g in page] == [2, 1, 0]
        assert page[1].state is GapState.CONFIRMED

    def test_damaged_cursor_is_rejected(self) -> None:
        """A cursor this store did not make raises BadCursorError."""
        with pytest.raises(BadCursorError):
            store().query(GapQuery(), limit=1, cursor="!!not-base64")
