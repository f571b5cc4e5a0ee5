"""Delivery bookkeeping of one producer life: what was assigned, acknowledged and failed.

Pure state with no I/O: the producer wrapper (or a :class:`~gapwatch.producer.Stamper`
fed by another client's delivery callbacks) tells it each fact, and it answers with
:class:`~gapwatch.core.model.ProducerReport` snapshots. It never awaits, logs or reads
the clock.

Per stream (topic, partition of this producer and epoch) it keeps:

1. ``next_seq``: the next sequence to hand out; everything below it was assigned.
2. ``highest_acked``: the highest sequence the broker acknowledged (``None`` until the
   first acknowledgement, and forever with ``acks=0``, where nothing is acknowledged).
3. ``failed``: the sequences whose send failed with an error the application received,
   as compact ranges, plus counts by error type.
4. counters for metrics: acknowledged, sent without acknowledgement (``acks=0``) and
   unobserved (the application cancelled the delivery future before it resolved, so the
   outcome could not be seen).
"""

from __future__ import annotations

from collections.abc import Iterator

from gapwatch.core.model import ProducerReport
from gapwatch.producer.ranges import SeqRanges


class StreamBook:
    """The bookkeeping of one (topic, partition) of one producer life."""

    __slots__ = (
        "acked",
        "failed",
        "failed_by_error",
        "highest_acked",
        "is_changed",
        "next_seq",
        "partition",
        "topic",
        "unconfirmed",
        "unobserved",
    )

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self.next_seq = 0
        self.highest_acked: int | None = None
        self.acked = 0
        self.unconfirmed = 0
        self.unobserved = 0
        self.failed = SeqRanges()
        self.failed_by_error: dict[str, int] = {}
        self.is_changed = False  # since the last report taken

    @property
    def highest_assigned(self) -> int | None:
        """The highest sequence handed out, ``None`` before the first."""
        return self.next_seq - 1 if self.next_seq else None


class DeliveryBook:
    """All streams of one producer life (one producer id and epoch)."""

    __slots__ = ("_changed", "_streams", "epoch", "producer")

    def __init__(self, *, producer: str, epoch: int) -> None:
        self.producer = producer
        self.epoch = epoch
        self._streams: dict[tuple[str, int], StreamBook] = {}
        self._changed: list[StreamBook] = []

    def stream(self, topic: str, partition: int) -> StreamBook:
        """The stream for (topic, partition), created on first use."""
        key = (topic, partition)
        book = self._streams.get(key)
        if book is None:
            book = self._streams[key] = StreamBook(topic, partition)
        return book

    def find_stream(self, topic: str, partition: int) -> StreamBook | None:
        """The stream for (topic, partition), or ``None`` if this life never wrote there."""
        return self._streams.get((topic, partition))

    def streams(self) -> Iterator[StreamBook]:
        """Every stream this life has written to."""
        return iter(self._streams.values())

    def _queue_for_report(self, book: StreamBook) -> None:
        """Have the next periodic report include ``book``."""
        if not book.is_changed:
            book.is_changed = True
            self._changed.append(book)

    def assign(self, book: StreamBook) -> int:
        """Hand out the stream's next sequence."""
        seq = book.next_seq
        book.next_seq = seq + 1
        if not book.is_changed:  # _queue_for_report, inlined: once per record sent
            book.is_changed = True
            self._changed.append(book)
        return seq

    def assign_many(self, book: StreamBook, count: int) -> int:
        """Hand out ``count`` consecutive sequences; returns the first."""
        first = book.next_seq
        book.next_seq = first + count
        self._queue_for_report(book)
        return first

    def acknowledged(self, book: StreamBook, seq: int, count: int = 1) -> None:
        """The broker acknowledged ``seq`` (and the ``count - 1`` sequences before it)."""
        book.acked += count
        if book.highest_acked is None or seq > book.highest_acked:
            book.highest_acked = seq
        self._queue_for_report(book)

    def sent_unacknowledged(self, book: StreamBook, seq: int, count: int = 1) -> None:
        """``seq`` left with ``acks=0``: written to the socket, never acknowledged."""
        book.unconfirmed += count

    def unobserved(self, book: StreamBook, seq: int, count: int = 1) -> None:
        """The outcome of ``seq`` cannot be known (its delivery future was cancelled)."""
        book.unobserved += count

    def failed(
        self, book: StreamBook, seq: int, error: BaseException | str, *, last: int | None = None
    ) -> None:
        """Sending ``seq`` (through ``last``) failed and the application received ``error``."""
        added = book.failed.add(seq) if last is None else book.failed.add_range(seq, last)
        if added:
            name = error if isinstance(error, str) else type(error).__name__
            book.failed_by_error[name] = book.failed_by_error.get(name, 0) + int(added)
        self._queue_for_report(book)

    def report(self, book: StreamBook, *, final: bool) -> ProducerReport:
        """A snapshot of one stream as a report."""
        return ProducerReport(
            producer=self.producer,
            epoch=self.epoch,
            topic=book.topic,
            partition=book.partition,
            highest_assigned=book.highest_assigned,
            highest_acked=book.highest_acked,
            failed=book.failed.as_tuples(),
            final=final,
        )

    def take_reports(self, *, final: bool = False) -> list[ProducerReport]:
        """Reports for the streams that changed since the last call (all of them if final).

        Taking the reports marks the streams clean; a caller that fails to publish them
        hands the streams back with :meth:`mark_changed`.
        """
        books = list(self._streams.values()) if final else self._changed
        self._changed = []
        for book in books:
            book.is_changed = False
        return [self.report(book, final=final) for book in books]

    def mark_changed(self, topic: str, partition: int) -> None:
        """Have the next :meth:`take_reports` include this stream again."""
        book = self.find_stream(topic, partition)
        if book is not None:
            self._queue_for_report(book)
