"""The pure alert rules of the Alertmanager sink (gapwatch/alerting/alertbook.py)."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from monitor_factories import make_gap

from gapwatch.alerting.alertbook import AlertBook
from gapwatch.alerting.alertkinds import (
    DUPLICATE_BURST,
    GAP_CONFIRMED,
    GAP_TRUNCATED,
    GAPS_OVERFLOW,
    Alert,
)
from gapwatch.alerting.alertpolicy import AlertPolicy
from gapwatch.core.events import (
    DuplicateRecords,
    GapConfirmed,
    GapRecovered,
    GapSplit,
    GapTold,
    RecordsTruncated,
)
from gapwatch.core.model import Gap, GapState, StreamKey, gap_id

POLICY = AlertPolicy(
    loss_hold=600.0,
    repost_interval=10.0,
    max_per_partition=3,
    duplicate_threshold=5,
    duplicate_window=60.0,
    duplicate_hold=100.0,
    external_url="https://gw.example",
    instance="host/1",
)
T0 = 1_700_000_000.0


def confirmed(first_seq: int, *, at: float = T0, partition: int = 0, count: int = 1) -> Gap:
    gap = make_gap(first_seq, opened_at=at - 5, partition=partition, last_seq=first_seq + count - 1)
    return dataclasses.replace(gap, state=GapState.CONFIRMED, confirmed_at=at, updated_at=at)


def by_name(alerts: list[Alert], name: str) -> list[Alert]:
    return [a for a in alerts if a.label("alertname") == name]


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class TestOneAlertPerLostGap:
    def test_confirmed_gap_fires_one_alert_with_the_documented_labels(self) -> None:
        """Rule 1: labels identify the gap; annotations explain it and link to it."""
        book = AlertBook(POLICY)
        gap = dataclasses.replace(confirmed(10, count=3), offset_before=41, offset_after=42)
        book.apply([GapConfirmed(gap)], T0)
        (alert,) = book.current(T0)
        assert dict(alert.labels) == {
            "alertname": GAP_CONFIRMED,
            "severity": "critical",
            "topic": "t",
            "partition": "0",
            "producer": "p",
            "gap_id": gap.id,
        }
        notes = dict(alert.annotations)
        assert notes["count"] == "3"
        assert notes["sequence_range"] == "10..12"
        assert (notes["offset_before"], notes["offset_after"]) == ("41", "42")
        assert notes["producer_told"] == "false"
        assert notes["gap_url"] == f"https://gw.example/gaps/{gap.id}"
        assert notes["monitor"] == "host/1"
        assert alert.generator_url == notes["gap_url"]
        assert alert.starts_at == T0
        body = alert.to_json()
        assert set(body) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
        assert ts(body["startsAt"]) == T0

    def test_the_same_gap_twice_is_still_one_alert(self) -> None:
        """Re-confirmation (e.g. after a replay) updates, never duplicates."""
        book = AlertBook(POLICY)
        book.apply([GapConfirmed(confirmed(10))], T0)
        book.apply([GapConfirmed(confirmed(10))], T0 + 1)
        assert len(book.current(T0 + 1)) == 1

    def test_truncated_gap_has_its_own_alert_name(self) -> None:
        """A truncation is loss too, named so the rule-based alert's name stays distinct."""
        book = AlertBook(POLICY)
        gap = dataclasses.replace(confirmed(3), state=GapState.TRUNCATED, confirmed_at=None)
        book.apply([RecordsTruncated("t", 0, 5, 10, (gap,), 1, 0, T0)], T0)
        (alert,) = book.current(T0)
        assert alert.label("alertname") == GAP_TRUNCATED
        assert alert.label("severity") == "critical"


class TestSplitByProducerReport:
    def pieces(self, gap: Gap, at: int) -> tuple[Gap, Gap]:
        left = dataclasses.replace(gap, last_seq=at - 1, count=at - gap.first_seq)
        right = dataclasses.replace(
            gap,
            id=gap_id(gap.key, at, cause=gap.cause),
            first_seq=at,
            count=gap.last_seq - at + 1,
            producer_told=True,
        )
        return left, right

    def test_confirmed_gap_split_into_told_and_silent_has_one_alert_per_piece(self) -> None:
        """Rule 1 after an R12 split: the left alert is updated, the right piece gets its
        own alert from the same confirmation time, each with its own producer_told."""
        book = AlertBook(POLICY)
        gap = confirmed(101, count=1403)
        book.apply([GapConfirmed(gap)], T0)
        left, right = self.pieces(gap, 108)
        version = book.version
        book.apply([GapSplit(left, right, None)], T0 + 30)
        assert book.version > version
        alerts = {a.label("gap_id"): dict(a.annotations) for a in book.current(T0 + 30)}
        assert alerts[left.id]["count"] == "7"
        assert alerts[left.id]["producer_told"] == "false"
        assert alerts[right.id]["count"] == "1396"
        assert alerts[right.id]["producer_told"] == "true"
        assert {a.starts_at for a in book.current(T0 + 30)} == {T0}

    def test_split_of_an_overflowed_gap_stays_in_the_overflow(self) -> None:
        """Rule 2: both pieces of old news stay summarised, with the same total count."""
        book = AlertBook(POLICY)
        gaps = [confirmed(i * 100, count=10) for i in range(4)]
        book.apply([GapConfirmed(g) for g in gaps], T0)
        left, right = self.pieces(gaps[3], 304)
        book.apply([GapSplit(left, right, None)], T0 + 1)
        alerts = book.current(T0 + 1)
        assert len(by_name(alerts, GAP_CONFIRMED)) == 3
        notes = dict(by_name(alerts, GAPS_OVERFLOW)[0].annotations)
        assert (notes["gaps"], notes["count"]) == ("2", "10")

    def test_a_firing_gap_told_later_is_reposted_with_the_new_annotation(self) -> None:
        """Rule 1: a later report covering all of a confirmed gap (GapTold) updates its
        alert, which is re-posted (version bump) with producer_told true."""
        book = AlertBook(POLICY)
        gap = confirmed(7, count=3)
        book.apply([GapConfirmed(gap)], T0)
        version = book.version
        book.apply([GapTold(dataclasses.replace(gap, producer_told=True))], T0 + 5)
        assert book.version > version
        (alert,) = book.current(T0 + 5)
        assert dict(alert.annotations)["producer_told"] == "true"
        assert alert.starts_at == T0

    def test_open_gap_told_fires_nothing(self) -> None:
        """An open gap told by a report is not a loss yet: no alert, no re-post."""
        book = AlertBook(POLICY)
        version = book.version
        book.apply([GapTold(make_gap(1, opened_at=T0, last_seq=3))], T0)
        assert (book.current(T0), book.version) == ([], version)

    def test_open_gap_split_fires_nothing(self) -> None:
        """Open pieces (R6 or R12 splits before confirmation) are not losses yet."""
        book = AlertBook(POLICY)
        gap = make_gap(1, opened_at=T0, last_seq=9)
        left, right = self.pieces(gap, 5)
        book.apply([GapSplit(left, right, None)], T0)
        assert book.current(T0) == []


class TestEndsAt:
    def test_firing_alert_ends_a_few_reposts_ahead(self) -> None:
        """Rule 5: endsAt = now + 4 x repost interval while the hold lasts."""
        book = AlertBook(POLICY)
        book.apply([GapConfirmed(confirmed(1))], T0)
        (alert,) = book.current(T0 + 100)
        assert alert.ends_at == T0 + 100 + 40
        assert alert.is_firing(T0 + 100)

    def test_firing_alert_never_ends_after_its_hold(self) -> None:
        """Rule 5: near the end of the hold, endsAt is the hold's end."""
        book = AlertBook(POLICY)
        book.apply([GapConfirmed(confirmed(1))], T0)
        (alert,) = book.current(T0 + 590)
        assert alert.ends_at == T0 + 600

    def test_hold_over_resolves_with_end_in_the_past(self) -> None:
        """Rule 3: after loss_hold the alert is posted resolved, endsAt = confirmation + hold."""
        book = AlertBook(POLICY)
        book.apply([GapConfirmed(confirmed(1))], T0)
        version = book.version
        book.advance(T0 + 601)
        (alert,) = book.current(T0 + 601)
        assert alert.ends_at == T0 + 600
        assert not alert.is_firing(T0 + 601)
        assert book.version > version
        assert book.firing_count() == 0

    def test_recovered_gap_resolves_at_once(self) -> None:
        """Rule 4: every missing record arrived: endsAt = now."""
        book = AlertBook(POLICY)
        gap = confirmed(1, count=2)
        book.apply([GapConfirmed(gap)], T0)
        partial = dataclasses.replace(gap, recovered=1)
        book.apply([GapRecovered(partial, 1)], T0 + 5)
        assert book.current(T0 + 5)[0].is_firing(T0 + 5)
        done = dataclasses.replace(gap, recovered=2, state=GapState.RECOVERED)
        book.apply([GapRecovered(done, 2)], T0 + 7)
        (alert,) = book.current(T0 + 8)
        assert alert.ends_at == T0 + 7
        assert dict(alert.annotations)["state"] == "recovered"

    def test_resolved_alerts_are_resent_for_a_while_then_forgotten(self) -> None:
        """Rule 6: resolved alerts stay in the posts for 4 x repost interval."""
        book = AlertBook(POLICY)
        book.apply([GapConfirmed(confirmed(1))], T0)
        book.advance(T0 + 601)
        book.advance(T0 + 600 + 39)
        assert len(book.current(T0 + 639)) == 1
        book.advance(T0 + 600 + 41)
        assert book.current(T0 + 641) == []

    def test_next_deadline_is_the_earliest_hold_end(self) -> None:
        """The poster wakes up in time to post a resolution."""
        book = AlertBook(POLICY)
        assert book.next_deadline() is None
        book.apply([GapConfirmed(confirmed(1, at=T0 + 3)), GapConfirmed(confirmed(5))], T0 + 3)
        assert book.next_deadline() == T0 + 600


class TestStormControl:
    def test_thousands_of_gaps_page_as_a_few_alerts_per_partition(self) -> None:
        """Rule 2: N per-gap alerts per partition, the rest in one overflow alert."""
        book = AlertBook(POLICY)
        events = [GapConfirmed(confirmed(i * 10, partition=i % 2, count=2)) for i in range(5000)]
        book.apply(events, T0)
        alerts = book.current(T0)
        assert len(alerts) == 2 * 3 + 2
        for partition in ("0", "1"):
            mine = [a for a in alerts if a.label("partition") == partition]
            assert len(by_name(mine, GAP_CONFIRMED)) == 3
            (overflow,) = by_name(mine, GAPS_OVERFLOW)
            notes = dict(overflow.annotations)
            assert notes["gaps"] == str(2500 - 3)
            assert notes["count"] == str((2500 - 3) * 2)
            assert "gap_id" not in dict(overflow.labels)
            assert overflow.label("severity") == "critical"
        assert book.firing_count() == 8

    def test_overflowed_gap_is_never_promoted(self) -> None:
        """A per-gap slot that frees up does not page again for an overflowed gap."""
        book = AlertBook(POLICY)
        gaps = [confirmed(i * 10) for i in range(5)]
        book.apply([GapConfirmed(g) for g in gaps], T0)
        recovered = dataclasses.replace(gaps[0], recovered=1, state=GapState.RECOVERED)
        book.apply([GapRecovered(recovered, 0), GapConfirmed(gaps[4])], T0 + 1)
        firing = [a for a in book.current(T0 + 1) if a.is_firing(T0 + 1)]
        assert {a.label("gap_id") for a in by_name(firing, GAP_CONFIRMED)} == {
            g.id for g in gaps[1:3]
        }
        assert dict(by_name(firing, GAPS_OVERFLOW)[0].annotations)["gaps"] == "2"

    def test_overflow_resolves_when_its_last_member_recovers(self) -> None:
        """Rule 4 for the overflow alert."""
        book = AlertBook(POLICY)
        gaps = [confirmed(i * 10) for i in range(4)]
        book.apply([GapConfirmed(g) for g in gaps], T0)
        done = dataclasses.replace(gaps[3], recovered=1, state=GapState.RECOVERED)
        book.apply([GapRecovered(done, 30)], T0 + 2)
        (overflow,) = by_name(book.current(T0 + 3), GAPS_OVERFLOW)
        assert overflow.ends_at == T0 + 2


class TestDuplicateBursts:
    key = StreamKey("t", 0, "p", 1)

    def test_burst_over_threshold_fires_a_warning(self) -> None:
        """Rule 7: threshold duplicates within the window."""
        book = AlertBook(POLICY)
        book.apply([DuplicateRecords(self.key, 1, 2, 2, 10)], T0)
        assert book.current(T0) == []
        book.apply([DuplicateRecords(self.key, 3, 5, 3, 13)], T0 + 30)
        (alert,) = book.current(T0 + 30)
        assert dict(alert.labels) == {
            "alertname": DUPLICATE_BURST,
            "severity": "warning",
            "topic": "t",
            "partition": "0",
            "producer": "p",
        }
        assert dict(alert.annotations)["count"] == "5"

    def test_duplicates_spread_wider_than_the_window_do_not_fire(self) -> None:
        """The window slides: old duplicates no longer count."""
        book = AlertBook(POLICY)
        for i in range(10):
            book.apply([DuplicateRecords(self.key, i, i, 1, i)], T0 + i * 20)
        assert book.current(T0 + 200) == []

    def test_burst_resolves_after_its_hold(self) -> None:
        """Rule 7: firing until duplicate_hold after the last duplicate."""
        book = AlertBook(POLICY)
        book.apply([DuplicateRecords(self.key, 1, 5, 5, 10)], T0)
        book.advance(T0 + 101)
        (alert,) = book.current(T0 + 101)
        assert alert.ends_at == T0 + 100


class TestAdoption:
    def test_taken_over_partition_keeps_paging_only_within_the_hold(self) -> None:
        """A new owner re-posts lost gaps whose hold is not over, not older ones."""
        book = AlertBook(POLICY)
        fresh, old = confirmed(1, at=T0 - 100), confirmed(5, at=T0 - 700)
        healed = dataclasses.replace(confirmed(9), state=GapState.HEALED)
        book.adopt([fresh, old, healed], T0)
        assert [a.label("gap_id") for a in book.current(T0)] == [fresh.id]
