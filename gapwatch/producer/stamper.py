"""``Stamper``: gapwatch stamps and bookkeeping for any client (confluent-kafka, kafka-python).

The application chooses the partition, asks the stamper for the headers of the next
record of that partition, produces with both, and feeds the delivery outcome back. The
stamper keeps the same bookkeeping as :class:`~gapwatch.producer.StampedProducer` and
renders its producer reports as ready-to-produce (key, value) pairs for the control topic.

It is thread-safe: kafka-python runs delivery callbacks on its own I/O thread. Ordering is
the caller's duty: call :meth:`stamp` and enqueue the record (``produce()``) without
another thread stamping the same partition in between, or hold a lock around both.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from prometheus_client import REGISTRY, CollectorRegistry

from gapwatch.core.model import ProducerReport
from gapwatch.core.report_codec import encode_report, encode_report_key
from gapwatch.core.wire import HEADER_EPOCH, HEADER_NAMES, HEADER_PRODUCER, HEADER_SEQ, parse_stamp
from gapwatch.errors import MalformedStampError
from gapwatch.producer.bookkeeping import DeliveryBook
from gapwatch.producer.config import DEFAULT_REPORT_TOPIC, AcksLabel, acks_label
from gapwatch.producer.identity import resolve_identity
from gapwatch.producer.metrics import collector_for


class Stamper:
    """Hands out stamps per (topic, partition) and books delivery outcomes.

    ``acks`` is the client's acks setting; with ``0`` a successful delivery is booked as
    sent without acknowledgement (librdkafka reports success at once with ``acks=0``).
    ``idempotence`` is whether the client's idempotent producer is on (``None``: reports
    do not say); both go into the reports for the monitor's durability audit.
    """

    def __init__(
        self,
        *,
        producer_id: str | None = None,
        epoch: int | None = None,
        acks: int | str = "all",
        idempotence: bool | None = None,
        report_topic: str = DEFAULT_REPORT_TOPIC,
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self.producer_id, self.epoch = resolve_identity(producer_id, epoch)
        self.acks: AcksLabel = acks_label(acks)
        self.idempotence = idempotence
        self.report_topic = report_topic
        self._lock = threading.Lock()
        self._book = DeliveryBook(producer=self.producer_id, epoch=self.epoch)
        self._producer_header = (HEADER_PRODUCER, self.producer_id.encode("utf-8"))
        self._epoch_header = (HEADER_EPOCH, b"%d" % self.epoch)
        self._collector = collector_for(registry)
        self._collector.attach(self._book)

    def stamp(
        self, topic: str, partition: int, headers: Iterable[tuple[str, bytes]] | None = None
    ) -> tuple[int, list[tuple[str, bytes]]]:
        """The next sequence of (topic, partition) and the headers to send with it.

        The returned headers are the caller's (in order, minus any stale gapwatch stamp)
        followed by the three stamp headers.
        """
        if partition < 0:
            raise ValueError("choose the partition before stamping (partition >= 0)")
        with self._lock:
            seq = self._book.assign(self._book.stream(topic, partition))
        result = [h for h in headers if h[0] not in HEADER_NAMES] if headers else []
        result.append(self._producer_header)
        result.append(self._epoch_header)
        result.append((HEADER_SEQ, b"%d" % seq))
        return seq, result

    def acknowledged(self, topic: str, partition: int, seq: int) -> None:
        """The broker acknowledged the record stamped ``seq``."""
        with self._lock:
            book = self._book.stream(topic, partition)
            if self.acks == "0":
                self._book.sent_unacknowledged(book, seq)
            else:
                self._book.acknowledged(book, seq)

    def failed(self, topic: str, partition: int, seq: int, error: BaseException | str) -> None:
        """Sending the record stamped ``seq`` failed with ``error`` (and the app knows)."""
        with self._lock:
            self._book.failed(self._book.stream(topic, partition), seq, error)

    def record_outcome(self, topic: str, partition: int, seq: int, error: object | None) -> None:
        """Book a delivery callback's outcome for the record stamped ``seq``.

        ``error`` is ``None`` on success, else the client's error; its name (an exception's
        class, confluent-kafka's ``KafkaError.name()``) labels the failure metric. This is
        what a confluent-kafka ``on_delivery`` callback calls (its delivery reports do not
        carry the record's headers, so bind ``seq`` when producing).
        """
        if error is None:
            self.acknowledged(topic, partition, seq)
        else:
            self.failed(topic, partition, seq, _error_name(error))

    def record_delivery(
        self,
        topic: str,
        partition: int,
        headers: Sequence[tuple[str, bytes | None]] | None,
        error: object | None,
    ) -> bool:
        """Book a delivery report by the stamp in the record's headers.

        For clients whose callbacks see the record's headers (kafka-python's record
        metadata does not, confluent-kafka's delivery reports do not either: prefer
        :meth:`record_outcome`). Returns False (and books nothing) if the headers carry
        no stamp of this stamper.
        """
        seq = self._own_seq(headers)
        if seq is None:
            return False
        self.record_outcome(topic, partition, seq, error)
        return True

    def failed_by_error(self, topic: str, partition: int) -> dict[str, int]:
        """How many sends of (topic, partition) failed, by error name (a copy)."""
        with self._lock:
            book = self._book.find_stream(topic, partition)
            return {} if book is None else dict(book.failed_by_error)

    def reports(self, *, final: bool = False) -> list[ProducerReport]:
        """Reports of the streams that changed since the last call (every stream if final)."""
        with self._lock:
            return self._book.take_reports(final=final)

    def report_records(self, *, final: bool = False) -> list[tuple[bytes, bytes]]:
        """:meth:`reports` encoded as (key, value) records for :attr:`report_topic`."""
        return [
            (
                encode_report_key(r),
                encode_report(r, acks=self.acks, idempotence=self.idempotence),
            )
            for r in self.reports(final=final)
        ]

    def close(self) -> None:
        """Stop exposing live metrics (the counts so far stay in the registry)."""
        self._collector.detach(self._book)

    def _own_seq(self, headers: Sequence[tuple[str, bytes | None]] | None) -> int | None:
        if not headers:
            return None
        try:
            stamp = parse_stamp(headers)
        except MalformedStampError:
            return None
        if stamp is None or stamp.producer != self.producer_id or stamp.epoch != self.epoch:
            return None
        return stamp.seq


def _error_name(error: object) -> str:
    if isinstance(error, str):
        return error
    if not isinstance(error, BaseException):
        name = getattr(error, "name", None)  # confluent_kafka.KafkaError.name()
        if callable(name):
            return str(name())
    return type(error).__name__
