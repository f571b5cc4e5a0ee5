"""Delivery bookkeeping, the Stamper for other clients, and the producer metrics."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry

from gapwatch.core.model import ProducerReport
from gapwatch.core.wire import parse_stamp
from gapwatch.producer import DeliveryBook, ProducerConfigError, ReportConfig, Stamper
from gapwatch.producer.metrics import collector_for
from gapwatch.producer.reports import ReportStats


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


class TestDeliveryBook:
    def test_report_of_a_fresh_stream(self) -> None:
        """Assigned but not yet acknowledged: highest_acked is None."""
        book = DeliveryBook(producer="p", epoch=5)
        stream = book.stream("t", 2)
        assert [book.assign(stream) for _ in range(3)] == [0, 1, 2]
        assert book.take_reports() == [
            ProducerReport("p", 5, "t", 2, highest_assigned=2, highest_acked=None)
        ]

    def test_acks_failures_and_ranges(self) -> None:
        """Acks raise the high mark, failures become ranges with counts by error type."""
        book = DeliveryBook(producer="p", epoch=5)
        stream = book.stream("t", 0)
        for _ in range(10):
            book.assign(stream)
        book.acknowledged(stream, 1)
        for seq in (2, 3, 4):
            book.failed(stream, seq, TimeoutError())
        book.failed(stream, 7, "NotLeaderForPartitionError")
        book.acknowledged(stream, 9)
        book.acknowledged(stream, 8)  # out of order: the high mark stays
        report = book.report(stream, final=False)
        assert report.highest_acked == 9
        assert report.failed == ((2, 4), (7, 7))
        assert stream.failed_by_error == {"TimeoutError": 3, "NotLeaderForPartitionError": 1}
        assert stream.acked == 3

    def test_take_reports_returns_changed_streams_once(self) -> None:
        """A periodic report carries only streams touched since the previous one."""
        book = DeliveryBook(producer="p", epoch=1)
        a, b = book.stream("t", 0), book.stream("t", 1)
        book.assign(a)
        book.assign(b)
        assert {r.partition for r in book.take_reports()} == {0, 1}
        assert book.take_reports() == []
        book.acknowledged(b, 0)
        assert [r.partition for r in book.take_reports()] == [1]

    def test_final_reports_cover_every_stream(self) -> None:
        """The final report includes unchanged streams, flagged final."""
        book = DeliveryBook(producer="p", epoch=1)
        book.assign(book.stream("t", 0))
        book.assign(book.stream("u", 0))
        book.take_reports()
        final = book.take_reports(final=True)
        assert {(r.topic, r.final) for r in final} == {("t", True), ("u", True)}

    def test_mark_changed_requeues_a_stream(self) -> None:
        """A report that failed to publish is sent again next time."""
        book = DeliveryBook(producer="p", epoch=1)
        book.assign(book.stream("t", 0))
        book.take_reports()
        book.mark_changed("t", 0)
        book.mark_changed("t", 9)  # unknown stream: ignored
        assert [r.partition for r in book.take_reports()] == [0]

    def test_acks0_outcomes_never_acknowledge(self) -> None:
        """With acks=0 a sent record is counted, but highest_acked stays None."""
        book = DeliveryBook(producer="p", epoch=1)
        stream = book.stream("t", 0)
        book.sent_unacknowledged(stream, book.assign(stream))
        assert book.report(stream, final=True).highest_acked is None
        assert stream.unconfirmed == 1


class TestStamper:
    def test_headers_follow_the_callers_and_parse_back(self) -> None:
        """User headers first and in order, then a stamp the wire parser accepts."""
        stamper = Stamper(producer_id="svc", epoch=7, registry=None)
        user = [("b", b"2"), ("a", b"1")]
        seq, headers = stamper.stamp("t", 4, user)
        assert seq == 0
        assert headers[:2] == user
        stamp = parse_stamp(headers)
        assert stamp is not None
        assert (stamp.producer, stamp.epoch, stamp.seq) == ("svc", 7, 0)
        assert stamper.stamp("t", 4)[0] == 1
        assert stamper.stamp("t", 5)[0] == 0

    def test_stale_stamp_in_forwarded_headers_is_replaced(self) -> None:
        """A forwarded record's old stamp does not make the new record malformed."""
        upstream = Stamper(producer_id="up", epoch=1, registry=None)
        _, forwarded = upstream.stamp("in", 0, [("trace", b"x")])
        stamper = Stamper(producer_id="down", epoch=2, registry=None)
        _, headers = stamper.stamp("out", 0, forwarded)
        stamp = parse_stamp(headers)
        assert stamp is not None
        assert stamp.producer == "down"
        assert headers[0] == ("trace", b"x")

    def test_partition_must_be_chosen(self) -> None:
        """Stamping without a partition is refused: sequences are per partition."""
        with pytest.raises(ValueError, match="choose the partition"):
            Stamper(registry=None).stamp("t", -1)

    def test_record_delivery_books_own_stamps_only(self) -> None:
        """Delivery reports are matched by the stamp in the record's headers."""
        stamper = Stamper(producer_id="svc", epoch=7, registry=None)
        _, h0 = stamper.stamp("t", 0)
        _, h1 = stamper.stamp("t", 0)
        _, foreign = Stamper(producer_id="other", epoch=7, registry=None).stamp("t", 0)

        class KafkaError:  # the shape of confluent_kafka.KafkaError
            def name(self) -> str:
                return "_MSG_TIMED_OUT"

        assert stamper.record_delivery("t", 0, h0, None)
        assert stamper.record_delivery("t", 0, h1, KafkaError())
        assert not stamper.record_delivery("t", 0, foreign, None)
        assert not stamper.record_delivery("t", 0, [("x", b"1")], None)
        assert not stamper.record_delivery("t", 0, None, None)
        (report,) = stamper.reports()
        assert (report.highest_acked, report.failed) == (0, ((1, 1),))
        assert stamper.failed_by_error("t", 0) == {"_MSG_TIMED_OUT": 1}

    def test_acks0_success_is_not_an_acknowledgement(self) -> None:
        """With acks=0 the client's 'success' is booked as sent, not acknowledged."""
        stamper = Stamper(producer_id="svc", epoch=1, acks=0, registry=None)
        seq, _ = stamper.stamp("t", 0)
        stamper.acknowledged("t", 0, seq)
        assert stamper.reports()[0].highest_acked is None

    def test_report_records_decode(self) -> None:
        """report_records gives (key, value) pairs ready for the control topic."""
        from gapwatch.core.report_codec import decode_report

        stamper = Stamper(producer_id="svc", epoch=1, registry=None)
        stamper.stamp("t", 0)
        ((key, value),) = stamper.report_records(final=True)
        assert key.startswith(b'["gapwatch-report",1,"svc",1,"t",0]')
        assert decode_report(value).final

    def test_report_records_say_how_the_client_writes(self) -> None:
        """acks and, when given, idempotence go into every report for the durability
        audit; without idempotence given the reports do not claim either way."""
        from gapwatch.core.model import WriteSettings
        from gapwatch.core.report_codec import decode_report_with_settings

        stamper = Stamper(producer_id="svc", epoch=1, acks=1, idempotence=False, registry=None)
        stamper.stamp("t", 0)
        ((_, value),) = stamper.report_records(final=True)
        assert decode_report_with_settings(value)[1] == WriteSettings("1", False)
        silent = Stamper(producer_id="svc2", epoch=1, acks="all", registry=None)
        silent.stamp("t", 0)
        ((_, value),) = silent.report_records(final=True)
        assert decode_report_with_settings(value)[1] == WriteSettings("all", None)

    def test_concurrent_threads_never_share_a_sequence(self) -> None:
        """Stamping from several threads hands out each sequence exactly once."""
        stamper = Stamper(producer_id="svc", epoch=1, registry=None)
        seqs: list[int] = []
        lock = threading.Lock()

        def work() -> None:
            mine = [stamper.stamp("t", 0)[0] for _ in range(2000)]
            with lock:
                seqs.extend(mine)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(seqs) == list(range(8000))

    def test_invalid_settings_name_the_field(self) -> None:
        """Bad settings raise ProducerConfigError naming the field."""
        with pytest.raises(ProducerConfigError) as info:
            Stamper(acks="some", registry=None)
        assert info.value.field == "acks"
        with pytest.raises(ProducerConfigError) as info:
            ReportConfig(interval_s=0).validate()
        assert info.value.field == "interval_s"


class TestMetrics:
    def test_counts_by_topic_and_error(self) -> None:
        """Stamped, acknowledged and failed counts appear per topic at scrape time."""
        registry = CollectorRegistry()
        stamper = Stamper(producer_id="svc", epoch=1, registry=registry)
        for _ in range(3):
            stamper.stamp("t", 0)
        stamper.stamp("u", 1)
        stamper.acknowledged("t", 0, 0)
        stamper.failed("t", 0, 1, TimeoutError())
        assert _sample(registry, "gapwatch_producer_records_stamped_total", topic="t") == 3
        assert _sample(registry, "gapwatch_producer_records_stamped_total", topic="u") == 1
        assert _sample(registry, "gapwatch_producer_records_acknowledged_total", topic="t") == 1
        assert _sample(registry, "gapwatch_producer_records_acknowledged_total", topic="u") == 0
        assert (
            _sample(
                registry, "gapwatch_producer_records_failed_total", topic="t", error="TimeoutError"
            )
            == 1
        )
        assert _sample(registry, "gapwatch_producer_records_failed_total", topic="u", error="") == 0
        assert _sample(registry, "gapwatch_producer_reports_published_total", topic="u") == 0

    def test_counters_survive_a_closed_producer_and_add_up(self) -> None:
        """Two producers share the registry; closing one never lowers a counter."""
        registry = CollectorRegistry()
        first = Stamper(producer_id="a", epoch=1, registry=registry)
        second = Stamper(producer_id="b", epoch=1, registry=registry)
        first.stamp("t", 0)
        second.stamp("t", 0)
        first.close()
        first.close()  # idempotent
        assert _sample(registry, "gapwatch_producer_records_stamped_total", topic="t") == 2
        second.stamp("t", 0)
        assert _sample(registry, "gapwatch_producer_records_stamped_total", topic="t") == 3

    def test_report_stats_are_exposed(self) -> None:
        """Published and failed reports are counted by the topic they describe."""
        registry = CollectorRegistry()
        stats = ReportStats()
        collector_for(registry).attach(DeliveryBook(producer="p", epoch=1), stats)
        stats.published["t"] += 2
        stats.failed["t"] += 1
        assert _sample(registry, "gapwatch_producer_reports_published_total", topic="t") == 2
        assert _sample(registry, "gapwatch_producer_reports_failed_total", topic="t") == 1

    def test_one_collector_per_registry(self) -> None:
        """Many producers on one registry do not clash on metric names."""
        registry = CollectorRegistry()
        assert collector_for(registry) is collector_for(registry)
        assert collector_for(CollectorRegistry()) is not collector_for(registry)
