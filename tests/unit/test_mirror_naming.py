"""MirrorMaker 2's topic naming (gapwatch.core.replication) and the origin book's fields."""

from __future__ import annotations

import dataclasses
import json

from monitor_factories import make_gap

from gapwatch.alerting.alertbook import AlertBook
from gapwatch.alerting.alertpolicy import AlertPolicy
from gapwatch.core.events import GapConfirmed
from gapwatch.core.model import GapState
from gapwatch.core.origin import Attribution, Origin, Reason
from gapwatch.core.replication import MirroredTopic, source_of
from gapwatch.gaps.encoding import GapEncoder
from gapwatch.gaps.origins import NOT_MIRRORED, OriginBook


class TestSourceOf:
    def test_default_policy_strips_the_alias_prefix(self) -> None:
        assert source_of("east.orders", aliases=("east",), policy="default") == MirroredTopic(
            "east.orders", "east", "orders"
        )

    def test_default_policy_ignores_other_topics(self) -> None:
        assert source_of("orders", aliases=("east",), policy="default") is None
        assert source_of("east.", aliases=("east",), policy="default") is None
        assert source_of("eastern.orders", aliases=("east",), policy="default") is None

    def test_the_longest_alias_wins(self) -> None:
        found = source_of("eu.west.orders", aliases=("eu", "eu.west"), policy="default")
        assert found == MirroredTopic("eu.west.orders", "eu.west", "orders")

    def test_identity_policy_keeps_the_name_of_its_one_source(self) -> None:
        assert source_of("orders", aliases=("east",), policy="identity") == MirroredTopic(
            "orders", "east", "orders"
        )
        assert source_of("orders", aliases=(), policy="identity") is None


class TestOriginBook:
    def test_unmirrored_topics_have_null_fields(self) -> None:
        book = OriginBook(aliases=("east",), policy="default")
        assert book.fields_of(make_gap(1, opened_at=1.0, topic="orders")) is NOT_MIRRORED

    def test_open_gap_on_a_copy_names_the_source_but_no_origin(self) -> None:
        book = OriginBook(aliases=("east",), policy="default")
        fields = book.fields_of(make_gap(1, opened_at=1.0, topic="east.orders"))
        assert fields == {
            "origin": None,
            "origin_reason": None,
            "source_cluster": "east",
            "source_topic": "orders",
        }

    def test_confirmed_gap_is_pending_until_decided(self) -> None:
        book = OriginBook(aliases=("east",), policy="default")
        gap = make_gap(1, opened_at=1.0, topic="east.orders", state=GapState.CONFIRMED)
        assert book.needs_lookup(gap)
        assert book.fields_of(gap)["origin"] == "pending"
        decided = Attribution(Origin.MIRROR, Reason.IN_SOURCE, "all 1", in_source=1)
        book.decide(gap.id, decided)
        assert not book.needs_lookup(gap)
        fields = book.fields_of(gap)
        assert (fields["origin"], fields["origin_reason"]) == ("mirror", "in-source: all 1")
        assert book.fields_of(gap) is fields

    def test_decisions_beyond_the_limit_forget_the_oldest(self) -> None:
        book = OriginBook(aliases=("east",), policy="default", limit=2)
        decided = Attribution(Origin.SOURCE, Reason.NOT_IN_SOURCE, "x")
        for gap_id in ("a", "b", "c"):
            book.decide(gap_id, decided)
        assert (book.get("a"), book.get("c"), len(book)) == (None, decided, 2)

    def test_the_encoder_serves_a_new_origin_at_once(self) -> None:
        """A decision after the gap was encoded changes the bytes /gaps serves."""
        book = OriginBook(aliases=("east",), policy="default")
        encoder = GapEncoder(origins=book)
        gap = make_gap(1, opened_at=1.0, topic="east.orders", state=GapState.CONFIRMED)
        assert json.loads(encoder.encode(gap, "i"))["origin"] == "pending"
        book.decide(gap.id, Attribution(Origin.UNKNOWN, Reason.RETENTION, "gone"))
        body = json.loads(encoder.encode(gap, "i"))
        assert (body["origin"], body["origin_reason"]) == ("unknown", "retention: gone")
        recovered = dataclasses.replace(gap, state=GapState.RECOVERED)
        assert json.loads(encoder.encode(recovered, "i"))["origin"] == "unknown"


class TestPushedAlertsNameTheOrigin:
    def test_a_loss_on_a_copy_is_pending_then_names_its_origin(self) -> None:
        """The pushed alert's labels stay (one alert); its annotations gain the origin."""
        book = OriginBook(aliases=("east",), policy="default")
        alerts = AlertBook(
            AlertPolicy(
                loss_hold=600.0,
                repost_interval=10.0,
                max_per_partition=3,
                duplicate_threshold=5,
                duplicate_window=60.0,
                duplicate_hold=100.0,
                external_url="https://gw.example",
                instance="host/1",
            ),
            origins=book,
        )
        gap = make_gap(4, opened_at=100.0, topic="east.orders", state=GapState.CONFIRMED)
        alerts.apply([GapConfirmed(gap)], 105.0)
        (before,) = alerts.current(106.0)
        assert dict(before.annotations)["origin"] == "pending"
        book.decide(gap.id, Attribution(Origin.SOURCE, Reason.NOT_IN_SOURCE, "lost upstream"))
        (after,) = alerts.current(107.0)
        assert after.labels == before.labels
        notes = dict(after.annotations)
        assert notes["summary"] == "1 records lost on east.orders/0, origin source"
        assert (notes["origin_reason"], notes["source_cluster"], notes["source_topic"]) == (
            "not-in-source: lost upstream",
            "east",
            "orders",
        )

    def test_an_unmirrored_loss_has_no_origin_annotations(self) -> None:
        book = OriginBook(aliases=("east",), policy="default")
        alerts = AlertBook(
            AlertPolicy(
                loss_hold=600.0,
                repost_interval=10.0,
                max_per_partition=3,
                duplicate_threshold=5,
                duplicate_window=60.0,
                duplicate_hold=100.0,
                external_url="https://gw.example",
                instance="host/1",
            ),
            origins=book,
        )
        gap = make_gap(4, opened_at=100.0, topic="orders", state=GapState.CONFIRMED)
        alerts.apply([GapConfirmed(gap)], 105.0)
        (alert,) = alerts.current(106.0)
        assert "origin" not in dict(alert.annotations)
