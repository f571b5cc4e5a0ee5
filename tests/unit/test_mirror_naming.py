"""MirrorMaker 2's topic naming (gapwatch.core.replication) and the origin book's fields."""

from __future__ import annotations

import dataclasses
import json

from monitor_factories import make_gap

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
