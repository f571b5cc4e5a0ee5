"""The HTTP sinks against a real receiver on 127.0.0.1 (no Kafka, no mocks)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from monitor_factories import make_gap

from gapwatch.alerting.alertbook import AlertBook
from gapwatch.alerting.alertkinds import GAP_CONFIRMED, GAPS_OVERFLOW
from gapwatch.alerting.alertmanager import AlertmanagerSink
from gapwatch.alerting.alertpolicy import AlertPolicy
from gapwatch.alerting.delivery import DeliverySettings
from gapwatch.alerting.retry import Backoff
from gapwatch.alerting.webhook import SIGNATURE_HEADER, WebhookSink, sign, verify_signature
from gapwatch.core.events import GapConfirmed, GapRecovered
from gapwatch.core.model import Gap, GapState
from gapwatch.core.origin import Attribution, Origin, Reason
from gapwatch.gaps.origins import OriginBook
from gapwatch.testing.receiver import Receiver, run_receiver

SECRET = "0123456789abcdef-secret"
# A generous request timeout: on a loaded machine a local receiver can take longer than half
# a second to answer, and a retry would then deliver twice what the tests expect once. The
# test of a hanging receiver sets a short one itself.
FAST = DeliverySettings(timeout=5.0, max_retries=2, backoff_initial=0.05, backoff_max=0.1)


def confirmed(first_seq: int, *, partition: int = 0, topic: str = "t") -> Gap:
    now = time.time()
    gap = make_gap(first_seq, opened_at=now - 1, partition=partition, topic=topic)
    return dataclasses.replace(gap, state=GapState.CONFIRMED, confirmed_at=now, updated_at=now)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with run_receiver() as r:
        yield r


async def eventually(check: Callable[[], object], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def webhook(
    url: str, *, secret: str | None = SECRET, settings: DeliverySettings = FAST
) -> WebhookSink:
    return WebhookSink(
        url=url,
        secret=secret,
        kinds=("confirmed", "recovered"),
        group="g",
        instance="host/1",
        external_url="https://gw.example/",
        settings=settings,
    )


class TestBackoff:
    def test_doubles_up_to_the_cap_and_resets(self) -> None:
        """0.5, 1, 2, 4, capped; a success starts over."""
        backoff = Backoff(initial=0.5, maximum=3.0)
        assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
        backoff.reset()
        assert backoff.next_delay() == 0.5


class TestWebhookSink:
    async def test_receiver_verifies_the_signature_of_the_raw_body(
        self, receiver: Receiver
    ) -> None:
        """sha256=<hex HMAC> over the exact bytes sent; a wrong secret does not verify."""
        sink = webhook(receiver.url + "/hook")
        sink.start()
        try:
            gap = confirmed(5)
            sink.handle([GapConfirmed(gap)], time.time())
            # The receiver records a request before it answers: wait for the answer, or the
            # stop below could cancel the delivery it was about to count.
            await eventually(lambda: sink.stats.deliveries >= 1)
        finally:
            await sink.stop()
        (request,) = receiver.received()
        header = request.headers[SIGNATURE_HEADER.lower()]
        assert verify_signature(request.body, header, SECRET)
        assert not verify_signature(request.body, header, SECRET + "x")
        assert header == sign(request.body, SECRET)
        body = request.json()
        assert body["delivery_id"] == request.headers["x-gapwatch-delivery"]
        (event,) = body["events"]
        assert event["kind"] == "confirmed"
        assert event["gap"]["id"] == gap.id
        assert event["gap"]["instance"] == "host/1"
        assert event["gap_url"] == f"https://gw.example/gaps/{gap.id}"
        assert sink.stats.deliveries == 1

    async def test_unwanted_kinds_are_not_sent(self, receiver: Receiver) -> None:
        """Only webhook_events kinds are queued."""
        sink = webhook(receiver.url)
        open_gap = make_gap(1, opened_at=time.time())
        from gapwatch.core.events import GapOpened

        sink.handle([GapOpened(open_gap)], time.time())
        assert sink.stats.queued == 0

    async def test_failing_receiver_is_retried_counted_then_dropped(self) -> None:
        """500s: 1 + max_retries attempts, each a failure; the batch is dropped, counted."""
        with run_receiver("fail") as failing:
            sink = webhook(failing.url)
            sink.start()
            try:
                sink.handle([GapConfirmed(confirmed(5))], time.time())
                await eventually(lambda: sink.stats.dropped == 1)
            finally:
                await sink.stop()
            assert len(failing.received()) == 3
            assert sink.stats.failures == 3
            ids = {r.headers["x-gapwatch-delivery"] for r in failing.received()}
            assert len(ids) == 1, "retries resend the same delivery"

    async def test_hanging_receiver_times_out_and_handle_never_waits(self) -> None:
        """A receiver that never answers costs the sink timeouts, never the caller."""
        with run_receiver("hang") as hanging:
            sink = webhook(
                hanging.url, settings=dataclasses.replace(FAST, timeout=0.5, max_retries=0)
            )
            sink.start()
            try:
                started = time.perf_counter()
                for i in range(2000):
                    sink.handle([GapConfirmed(confirmed(i))], time.time())
                assert time.perf_counter() - started < 1.0
                await eventually(lambda: sink.stats.failures >= 1, within=5)
            finally:
                await sink.stop()
            assert sink.stats.deliveries == 0

    async def test_full_queue_drops_the_oldest_and_counts(self) -> None:
        """The queue is bounded; overflow is counted, not silent."""
        sink = webhook("http://127.0.0.1:9", settings=dataclasses.replace(FAST, queue_size=10))
        sink.handle([GapConfirmed(confirmed(i)) for i in range(25)], time.time())
        assert sink.stats.queued == 10
        assert sink.stats.dropped == 15


IN_SOURCE = Attribution(Origin.MIRROR, Reason.IN_SOURCE, "all 1 missing sequences are there")
MIRROR_FIELDS = ("origin", "origin_reason", "source_cluster", "source_topic")


def mirror_fields(gap_json: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(gap_json[name] for name in MIRROR_FIELDS)


class TestWebhookOrigins:
    """Gaps on a MirrorMaker copy: the mirror fields in every gap, and one update per loss
    posted while its origin was pending."""

    def sink(self, url: str, book: OriginBook) -> WebhookSink:
        sink = WebhookSink(
            url=url,
            secret=None,
            kinds=("confirmed", "recovered", "origin"),
            group="g",
            instance="host/1",
            external_url="https://gw.example/",
            settings=FAST,
            origins=book,
        )
        book.subscribe(sink.origin_decided)
        return sink

    @staticmethod
    def events(receiver: Receiver) -> list[dict[str, Any]]:
        return [event for request in receiver.received() for event in request.json()["events"]]

    async def test_a_pending_loss_is_posted_again_once_its_origin_is_decided(
        self, receiver: Receiver
    ) -> None:
        """confirmed (origin pending) then one `origin` event with the decision; a second
        decision of the same gap sends nothing more."""
        book = OriginBook(aliases=("east",), policy="default")
        sink = self.sink(receiver.url, book)
        sink.start()
        try:
            gap = confirmed(5, topic="east.orders")
            sink.handle([GapConfirmed(gap)], time.time())
            await eventually(lambda: len(self.events(receiver)) == 1)
            book.decide(gap.id, IN_SOURCE)
            await eventually(lambda: len(self.events(receiver)) == 2)
            book.decide(gap.id, IN_SOURCE)
            await asyncio.sleep(0.3)
        finally:
            await sink.stop()
        first, update = self.events(receiver)
        assert first["kind"] == "confirmed"
        assert mirror_fields(first["gap"]) == (
            "pending",
            "lookup-running: the source is being read",
            "east",
            "orders",
        )
        assert update["kind"] == "origin"
        assert update["gap"]["id"] == gap.id
        assert update["gap"]["state"] == "confirmed"
        assert mirror_fields(update["gap"]) == (
            "mirror",
            "in-source: all 1 missing sequences are there",
            "east",
            "orders",
        )
        assert update["gap_url"] == f"https://gw.example/gaps/{gap.id}"

    async def test_decided_before_posting_unmirrored_or_never_posted_sends_no_update(
        self, receiver: Receiver
    ) -> None:
        """A loss whose origin was already decided is posted with it and needs no update;
        an unmirrored topic's gap has null mirror fields; deciding a gap this sink never
        posted (another instance's, after a rebalance) sends nothing."""
        book = OriginBook(aliases=("east",), policy="default")
        sink = self.sink(receiver.url, book)
        sink.start()
        try:
            decided = confirmed(5, topic="east.orders")
            book.decide(decided.id, IN_SOURCE)
            plain = confirmed(7, topic="orders")
            sink.handle([GapConfirmed(decided), GapConfirmed(plain)], time.time())
            await eventually(lambda: len(self.events(receiver)) == 2)
            book.decide(decided.id, IN_SOURCE)
            book.decide(confirmed(9, topic="east.orders").id, IN_SOURCE)
            await asyncio.sleep(0.3)
        finally:
            await sink.stop()
        by_id = {e["gap"]["id"]: e for e in self.events(receiver)}
        assert len(self.events(receiver)) == 2
        assert mirror_fields(by_id[decided.id]["gap"])[0] == "mirror"
        assert mirror_fields(by_id[plain.id]["gap"]) == (None, None, None, None)

    async def test_without_the_origin_kind_no_update_is_queued(self, receiver: Receiver) -> None:
        """webhook_events without `origin`: the decision is not posted."""
        book = OriginBook(aliases=("east",), policy="default")
        sink = webhook(receiver.url)  # kinds confirmed, recovered; no origin book either
        book.subscribe(sink.origin_decided)
        gap = confirmed(5, topic="east.orders")
        sink.handle([GapConfirmed(gap)], time.time())
        book.decide(gap.id, IN_SOURCE)
        assert sink.stats.queued == 1


class TestAlertmanagerSink:
    def sink(self, url: str, **policy: float) -> AlertmanagerSink:
        book = AlertBook(
            AlertPolicy(repost_interval=policy.get("repost", 0.5), max_per_partition=3)
        )
        return AlertmanagerSink(urls=[url], book=book, settings=FAST)

    async def test_posts_new_alerts_and_reposts_while_active(self, receiver: Receiver) -> None:
        """A POST to /api/v2/alerts at once, then again every repost interval."""
        sink = self.sink(receiver.url)
        sink.start()
        try:
            gap = confirmed(1)
            sink.handle([GapConfirmed(gap)], time.time())
            await eventually(lambda: len(receiver.received()) >= 3)
        finally:
            await sink.stop()
        requests = receiver.received()
        assert {r.path for r in requests} == {"/api/v2/alerts"}
        for request in requests:
            (alert,) = request.json()
            assert alert["labels"]["gap_id"] == gap.id
        gaps = [r.at for r in requests]
        assert gaps[2] - gaps[1] >= 0.4

    async def test_recovery_is_posted_at_once_with_endsat_in_the_past(
        self, receiver: Receiver
    ) -> None:
        """Rule 4 over HTTP: the next POST after recovery carries a past endsAt."""
        sink = self.sink(receiver.url, repost=30.0)
        sink.start()
        try:
            gap = confirmed(1)
            sink.handle([GapConfirmed(gap)], time.time())
            await eventually(lambda: len(receiver.received()) == 1)
            done = dataclasses.replace(gap, recovered=1, state=GapState.RECOVERED)
            sink.handle([GapRecovered(done, 1)], time.time())
            await eventually(lambda: len(receiver.received()) == 2, within=3)
        finally:
            await sink.stop()
        from datetime import datetime

        (alert,) = receiver.received()[1].json()
        ends = datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00")).timestamp()
        assert ends <= receiver.received()[1].at

    async def test_a_decided_origin_is_posted_at_once_not_at_the_next_repost(
        self, receiver: Receiver
    ) -> None:
        """A loss on a copy is pushed with origin pending; its decision is pushed within
        a moment although the repost interval is 30 s, with the same labels."""
        book = OriginBook(aliases=("east",), policy="default")
        sink = AlertmanagerSink(
            urls=[receiver.url],
            book=AlertBook(AlertPolicy(repost_interval=30.0), origins=book),
            settings=FAST,
        )
        book.subscribe(sink.origin_decided)
        sink.start()
        try:
            gap = confirmed(1, topic="east.orders")
            sink.handle([GapConfirmed(gap)], time.time())
            await eventually(lambda: len(receiver.received()) == 1)
            book.decide(gap.id, IN_SOURCE)
            await eventually(lambda: len(receiver.received()) == 2, within=3)
            book.decide(confirmed(9, topic="east.orders").id, IN_SOURCE)  # no alert of it
            await asyncio.sleep(0.5)
        finally:
            await sink.stop()
        assert len(receiver.received()) == 2
        (before,), (after,) = (r.json() for r in receiver.received())
        assert before["labels"] == after["labels"]
        assert before["annotations"]["origin"] == "pending"
        assert after["annotations"]["origin"] == "mirror"
        assert after["annotations"]["summary"].endswith(", origin mirror")

    async def test_storm_of_a_thousand_gaps_is_one_small_post(self, receiver: Receiver) -> None:
        """Storm control over HTTP: 3 per-gap alerts + 1 overflow per partition."""
        sink = self.sink(receiver.url, repost=30.0)
        sink.start()
        try:
            sink.handle(
                [GapConfirmed(confirmed(i * 3, partition=i % 2)) for i in range(1000)], time.time()
            )
            await eventually(lambda: receiver.received())
            await asyncio.sleep(0.5)
        finally:
            await sink.stop()
        assert len(receiver.received()) == 1
        alerts = receiver.received()[0].json()
        names = sorted(a["labels"]["alertname"] for a in alerts)
        assert names == [GAP_CONFIRMED] * 6 + [GAPS_OVERFLOW] * 2
        overflow = [a for a in alerts if a["labels"]["alertname"] == GAPS_OVERFLOW]
        assert sorted(a["annotations"]["gaps"] for a in overflow) == ["497", "497"]
