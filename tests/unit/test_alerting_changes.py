"""Gap changes, their gap log wire form, the fleet view and the /events hub (all pure)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from monitor_factories import make_gap

from gapwatch.alerting.changes import (
    ChangeKind,
    GapChange,
    GapChangeDecodeError,
    changes_from_events,
    decode_change,
    encode_change,
)
from gapwatch.alerting.eventhub import EventHub, format_change, format_reset
from gapwatch.alerting.fleet import FleetFeed, FleetStore
from gapwatch.alerting.strings import StringTable
from gapwatch.core.events import (
    DuplicateRecords,
    GapConfirmed,
    GapJoined,
    GapOpened,
    GapSplit,
    GapTold,
    RecordsSkipped,
)
from gapwatch.core.model import GapState, StreamKey
from gapwatch.gaps.store import GapQuery

T0 = 1_700_000_000.0


def change(
    first_seq: int, *, state: GapState = GapState.OPEN, at: float = T0, **kw: str
) -> GapChange:
    gap = dataclasses.replace(make_gap(first_seq, opened_at=T0), state=state, updated_at=at)
    kind = ChangeKind.OPENED if state is GapState.OPEN else ChangeKind(state.value)
    return GapChange(kind, kw.get("group", "g"), kw.get("instance", "i1"), at, gap=gap)


class TestChanges:
    def test_tracker_events_become_gap_changes(self) -> None:
        """Every gap-carrying event is a change; a split gives two; duplicates give none."""
        a, b, c = make_gap(1, opened_at=T0), make_gap(3, opened_at=T0), make_gap(5, opened_at=T0)
        skipped = RecordsSkipped("t", 0, 10, 19, 10, T0)
        told = dataclasses.replace(a, producer_told=True)
        events = [
            GapOpened(a),
            GapSplit(b, c, 4),
            GapTold(told),
            GapConfirmed(a),
            DuplicateRecords(StreamKey("t", 0, "p", 1), 1, 1, 1, 7),
            skipped,
        ]
        changes = changes_from_events(events, group="g", instance="i", now=T0)
        assert [c.kind for c in changes] == [
            ChangeKind.OPENED,
            ChangeKind.SPLIT,
            ChangeKind.SPLIT,
            ChangeKind.TOLD,
            ChangeKind.CONFIRMED,
            ChangeKind.SKIPPED,
        ]
        assert changes[3].gap == told
        assert changes[-1].key == "g/skipped/t/0/10"
        assert changes[0].key == f"g/{a.id}"

    def test_a_join_is_an_absorbed_change_then_a_joined_one(self) -> None:
        """The absorbed piece's change comes first, keyed by its own id, so compaction
        keeps it as that key's last word; the joined gap's change follows."""
        left = dataclasses.replace(make_gap(1, last_seq=2, opened_at=T0), producer_told=True)
        right = dataclasses.replace(make_gap(3, last_seq=4, opened_at=T0), producer_told=True)
        joined = dataclasses.replace(left, last_seq=4, count=4)
        changes = changes_from_events([GapJoined(joined, right)], group="g", instance="i", now=T0)
        assert [(c.kind, c.key) for c in changes] == [
            (ChangeKind.ABSORBED, f"g/{right.id}"),
            (ChangeKind.JOINED, f"g/{left.id}"),
        ]
        assert decode_change(encode_change(changes[0])) == changes[0]

    def test_wire_form_round_trips_exactly(self) -> None:
        """A decoded gap equals the original, floats and enums included."""
        original = change(7, state=GapState.CONFIRMED)
        gap = dataclasses.replace(original.gap, confirmed_at=T0 + 0.125, offset_before=3)  # type: ignore[type-var]
        original = dataclasses.replace(original, gap=gap)
        assert decode_change(encode_change(original)) == original
        skipped = GapChange(
            ChangeKind.SKIPPED, "g", "i", T0, skipped=RecordsSkipped("t", 1, 2, 3, 2, T0)
        )
        assert decode_change(encode_change(skipped)) == skipped

    @pytest.mark.parametrize("raw", [b"", b"[]", b'{"v": 99}', b'{"v": 1, "kind": "nope"}'])
    def test_unreadable_records_raise_the_projects_error(self, raw: bytes) -> None:
        """Anything unreadable is a GapChangeDecodeError, never another exception."""
        with pytest.raises(GapChangeDecodeError):
            decode_change(raw)

    def test_decoded_changes_share_their_repeated_names_through_a_table(self) -> None:
        """With a string table, two decoded changes hold one copy of the group, instance,
        topic and producer id (each decode of JSON makes new strings otherwise), and
        still equal the originals."""
        strings = StringTable()
        first, second = (
            GapChange(
                ChangeKind.CONFIRMED,
                "monitors",
                "host-1",
                T0,
                gap=make_gap(seq, opened_at=T0, topic="orders", producer="loadgen-7"),
            )
            for seq in (1, 5)
        )
        a = decode_change(encode_change(first), strings=strings)
        b = decode_change(encode_change(second), strings=strings)
        assert (a, b) == (first, second)
        assert a.gap is not None
        assert b.gap is not None
        assert a.group is b.group
        assert a.instance is b.instance
        assert a.gap.topic is b.gap.topic
        assert a.gap.producer is b.gap.producer
        unshared = decode_change(encode_change(second))
        assert unshared.gap is not None
        assert unshared.gap.topic is not a.gap.topic
        skipped = GapChange(
            ChangeKind.SKIPPED, "g", "i1", T0, skipped=RecordsSkipped("orders", 1, 2, 3, 2, T0)
        )
        decoded = decode_change(encode_change(skipped), strings=strings)
        assert decoded == skipped
        assert decoded.skipped_range().topic is a.gap.topic

    def test_json_shows_the_gap_as_the_api_does_with_its_owner(self) -> None:
        """The API/webhook shape: gap.to_json() plus instance."""
        body = change(1).to_json()
        assert body["gap"]["instance"] == "i1"
        assert body["gap"]["id"] == make_gap(1, opened_at=T0).id
        assert body["kind"] == "opened"


class TestFleetStore:
    def test_other_groups_are_ignored(self) -> None:
        """Rule 1: fleets sharing one gap log topic do not see each other."""
        fleet = FleetStore(group="g", retention=100.0, limit=10)
        assert not fleet.apply(change(1, group="other"))
        assert len(fleet) == 0

    def test_newest_update_wins_and_names_the_owner(self) -> None:
        """Rule 2: an older change read back later does not roll the gap back."""
        fleet = FleetStore(group="g", retention=100.0, limit=10)
        fleet.apply(change(1, state=GapState.CONFIRMED, at=T0 + 5, instance="i2"))
        assert not fleet.apply(change(1, state=GapState.OPEN, at=T0 + 1, instance="i1"))
        found = fleet.get(make_gap(1, opened_at=T0).id)
        assert found is not None
        assert found[0].state is GapState.CONFIRMED
        assert found[1] == "i2"

    def test_an_absorbed_piece_leaves_the_view(self) -> None:
        """A join read from the gap log: the absorbed piece is gone, the joined gap stays
        open (it is not closed history either)."""
        fleet = FleetStore(group="g", retention=100.0, limit=10)
        fleet.apply(change(1, at=T0))
        fleet.apply(change(3, at=T0))
        absorbed = change(3, at=T0 + 1)
        fleet.apply(dataclasses.replace(absorbed, kind=ChangeKind.ABSORBED))
        assert fleet.get(make_gap(3, opened_at=T0).id) is None
        assert [g.first_seq for g in fleet.query(GapQuery(), limit=10).gaps] == [1]

    def test_retention_drops_old_closed_and_stale_open_gaps(self) -> None:
        """Rule 4: bounded by time, for open gaps too."""
        fleet = FleetStore(group="g", retention=100.0, limit=10)
        fleet.apply(change(1, state=GapState.CONFIRMED, at=T0))
        fleet.apply(change(2, state=GapState.OPEN, at=T0))
        fleet.apply(change(3, state=GapState.OPEN, at=T0 + 90))
        assert fleet.expire(T0 + 150) == 2
        page = fleet.query(GapQuery(), limit=10)
        assert [g.first_seq for g in page.gaps] == [3]

    def test_closed_gaps_are_bounded_by_count(self) -> None:
        """Rule 4: at most ``limit`` closed gaps, oldest update evicted first."""
        fleet = FleetStore(group="g", retention=1e9, limit=3)
        for seq in range(6):
            fleet.apply(change(seq, state=GapState.CONFIRMED, at=T0 + seq))
        fleet.expire(T0 + 10)
        assert sorted(g.first_seq for g in fleet.gaps.values()) == [3, 4, 5]

    def test_an_equal_change_read_back_keeps_the_stored_record(self) -> None:
        """Rule 2: this instance's own change, read back from the gap log, changes nothing
        and leaves the object the view holds in place (one copy of the gap, not two);
        :meth:`FleetStore.settle` hands out that same object for the /events buffer."""
        fleet = FleetStore(group="g", retention=100.0, limit=10)
        local = change(1, state=GapState.CONFIRMED, at=T0 + 5)
        assert local.gap is not None
        FleetFeed(fleet, group="g", instance="i1").handle([GapConfirmed(local.gap)], T0 + 5)
        applied = fleet.applied
        read_back = decode_change(encode_change(local))
        assert read_back.gap is not local.gap
        kept = fleet.settle(read_back)
        assert kept == read_back
        assert kept.gap is local.gap
        assert fleet.get(local.gap.id) == (local.gap, "i1")
        assert fleet.gaps.get(local.gap.id) is local.gap
        assert fleet.applied == applied

    def test_an_equal_gap_from_another_instance_changes_only_the_owner(self) -> None:
        """A new owner restating an unchanged gap (a rebalance) is applied: the owner is
        the new instance, the record object stays."""
        fleet = FleetStore(group="g", retention=100.0, limit=10)
        mine = change(1, state=GapState.CONFIRMED, at=T0 + 5, instance="i1")
        assert mine.gap is not None
        assert fleet.apply(mine)
        theirs = decode_change(encode_change(dataclasses.replace(mine, instance="i2")))
        assert fleet.apply(theirs)
        assert fleet.get(mine.gap.id) == (mine.gap, "i2")
        assert fleet.gaps.get(mine.gap.id) is mine.gap

    def test_settle_hands_out_a_newer_or_stale_change_as_it_is(self) -> None:
        """Only an equal record is shared: a newer change replaces the stored one, and a
        stale one (older than the stored record) is returned unchanged, not applied."""
        fleet = FleetStore(group="g", retention=100.0, limit=10)
        opened = change(1, state=GapState.OPEN, at=T0 + 1)
        confirmed = change(1, state=GapState.CONFIRMED, at=T0 + 5)
        assert fleet.settle(opened) is opened
        assert fleet.settle(confirmed) is confirmed
        assert fleet.settle(opened) is opened
        assert confirmed.gap is not None
        assert fleet.gaps.get(confirmed.gap.id) is confirmed.gap
        assert fleet.stale == 1
        skipped = GapChange(
            ChangeKind.SKIPPED, "g", "i1", T0, skipped=RecordsSkipped("t", 1, 2, 3, 2, T0)
        )
        assert fleet.settle(skipped) is skipped
        assert fleet.skipped() == [(skipped.skipped, "i1")]


class TestStringTable:
    def test_the_first_copy_is_handed_out_again(self) -> None:
        """Equal strings made apart come back as one object."""
        table = StringTable()
        first = "".join(["producer-", "1"])
        again = "".join(["producer", "-1"])
        assert first is not again
        assert table.share(first) is first
        assert table.share(again) is first
        assert len(table) == 1

    def test_the_table_is_bounded(self) -> None:
        """Past its limit the table starts over instead of growing: any number of
        distinct names (an untrusted gap log) keeps it small, and it still answers."""
        table = StringTable(limit=3)
        for n in range(10):
            assert table.share(f"p-{n}") == f"p-{n}"
            assert len(table) <= 3
        fresh = "".join(["p-", "9"])
        assert table.share(fresh) is not fresh  # "p-9" is in the table since the restart

    def test_a_limit_below_one_is_refused(self) -> None:
        with pytest.raises(ValueError, match="limit"):
            StringTable(limit=0)


class TestEventHub:
    async def test_every_client_gets_every_event(self) -> None:
        """Two clients, same events in the same order."""
        hub = EventHub(capacity=10)
        first, second = hub.subscribe(None), hub.subscribe(None)
        for i in range(3):
            hub.publish(i, change(i))
        for sub in (first, second):
            assert [sub.queue.get_nowait()[0] for _ in range(3)] == [0, 1, 2]  # type: ignore[index]

    async def test_resume_replays_what_came_after_the_last_id(self) -> None:
        """Last-Event-ID n: every buffered event above n, no reset."""
        hub = EventHub(capacity=10)
        for i in range(5):
            hub.publish(i, change(i))
        sub = hub.subscribe(2)
        assert [i for i, _ in sub.replay] == [3, 4]
        assert sub.reset_to is None

    async def test_too_old_an_id_gets_a_reset_first(self) -> None:
        """Events above n already evicted: reset names the oldest id still buffered."""
        hub = EventHub(capacity=3)
        for i in range(10):
            hub.publish(i, change(i))
        sub = hub.subscribe(2)
        assert sub.reset_to == 7
        assert [i for i, _ in sub.replay] == [7, 8, 9]
        assert hub.subscribe(6).reset_to is None

    async def test_log_start_sets_the_floor(self) -> None:
        """Ids below a log start > 0 (retention) were deleted: a reset."""
        hub = EventHub(capacity=10)
        hub.start_at(50)
        hub.publish(50, change(1))
        assert hub.subscribe(10).reset_to == 50
        assert hub.subscribe(49).reset_to is None

    async def test_close_ends_every_stream(self) -> None:
        """Shutdown: each client's queue ends with None; late subscribers end at once."""
        hub = EventHub(capacity=10)
        sub = hub.subscribe(None)
        hub.publish(1, change(1))
        hub.close()
        assert sub.queue.get_nowait() is not None
        assert sub.queue.get_nowait() is None
        assert hub.clients == 0
        late = hub.subscribe(None)
        assert await asyncio.wait_for(late.queue.get(), 1) is None

    async def test_slow_client_is_disconnected_not_silently_skipped(self) -> None:
        """A full client queue ends that client (it resumes from the buffer)."""
        hub = EventHub(capacity=5000)
        sub = hub.subscribe(None)
        for i in range(1001):
            hub.publish(i, change(i))
        assert sub.is_closed
        assert hub.disconnected_slow == 1
        items = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
        assert items[-1] is None

    def test_sse_format(self) -> None:
        """id line, one data line of JSON, blank line."""
        text = format_change(42, change(1))
        assert text.startswith("id: 42\ndata: {")
        assert text.endswith("}\n\n")
        assert format_reset(7).startswith("event: reset\ndata: ")
