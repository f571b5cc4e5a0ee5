"""The record path: one fetched batch of one partition into its tracker, in one call.

Per record the monitor must parse the stamp, feed the tracker and observe the end-to-end
latency. Done as three method calls per record (``StampReader.read``, ``observe``,
``LatencyHistogram.observe``) plus a ``Stamp`` built per record, that was more than a third
of the bare ``getmany`` loop's own cost per record (``bench/bench_monitor.py``, cProfile).
Here the common record (three headers in the documented order, from a (producer, epoch)
already validated) is parsed inline against :class:`StampReader`'s cache and handed to
``Tracker.observe_fields``, and latencies are counted once per batch
(``LatencyHistogram.observe_batch``): one Python call per record. Everything else (other
headers, new producers, malformed values) goes through the one parse-and-observe function,
:func:`gapwatch.core.intake.observe_record`, with ``StampReader.read``, so results and
errors are always those of ``parse_stamp``.

Records come from :class:`~gapwatch.kafka.aiokafka_consumer.RecordFetcher`: the record
batches' own record objects rather than aiokafka ``ConsumerRecord`` objects where the aiokafka
version allows it (only ``offset``, ``timestamp`` and ``headers`` are read).

``gapwatch audit`` reads its range through the same function, without a latency histogram
(it judges a range after the fact: how old its records are says nothing). It used to call
``observe_record`` per record and ran at half the speed of a bare ``getmany`` loop
(``bench/bench_audit.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from gapwatch.core.events import Event
from gapwatch.core.intake import observe_record
from gapwatch.core.stamps import MAX_FAST_DIGITS, StampReader
from gapwatch.core.wire import HEADER_EPOCH, HEADER_PRODUCER, HEADER_SEQ
from gapwatch.monitor.state.latency import LatencyHistogram
from gapwatch.monitor.state.partitions import Tracker

log = logging.getLogger(__name__)


def feed_records(
    records: Sequence[Any],
    *,
    tracker: Tracker,
    stamps: StampReader,
    latency: LatencyHistogram | None,
    now: float,
    events: list[Event],
) -> Any:
    """Feed ``records`` (of one partition, in offset order: anything with ``offset``,
    ``timestamp`` and ``headers``, as :class:`~gapwatch.kafka.aiokafka_consumer.RecordFetcher`
    hands out) to ``tracker``; events go to ``events``, end-to-end latencies to ``latency``
    unless it is ``None``. Returns the last record (``None`` if empty)."""
    observe = tracker.observe_fields
    known = stamps.known
    record = None
    for record in records:
        headers = record.headers
        try:
            (name1, raw_producer), (name2, raw_epoch), (name3, raw_seq) = headers
            pair = (
                known.get((raw_producer, raw_epoch))
                if name1 == HEADER_PRODUCER and name2 == HEADER_EPOCH and name3 == HEADER_SEQ
                else None
            )
        except (TypeError, ValueError):
            pair = raw_seq = None  # not three (name, value) pairs, or unhashable values
        if (
            pair is not None
            and type(raw_seq) is bytes
            and 0 < len(raw_seq) <= MAX_FAST_DIGITS
            and raw_seq.isdigit()
        ):
            found = observe(record.offset, record.timestamp, pair[0], pair[1], int(raw_seq), now)
        else:
            found = _observe_slowly(record, tracker, stamps, now)
        if found:
            events.extend(found)
    if latency is not None:
        latency.observe_batch([r.timestamp for r in records], now)
    return record


def _observe_slowly(
    record: Any, tracker: Tracker, stamps: StampReader, now: float
) -> Sequence[Event]:
    return observe_record(
        tracker,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        headers=record.headers,
        now=now,
        read_stamp=stamps.read,
        on_malformed=lambda offset, reason: log.debug(
            "malformed stamp at %s-%d@%d: %s", tracker.topic, tracker.partition, offset, reason
        ),
    )
