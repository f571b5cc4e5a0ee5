"""The wire format of producer reports: one JSON record per stream on the control topic.

Version 1, a public contract (``docs/producer.md``) so that producers in other
languages can publish reports too::

    key:   ["gapwatch-report",1,"<producer>",<epoch>,"<topic>",<partition>]
    value: {"v":1,"producer":"...","epoch":1700000000000,"topic":"orders","partition":3,
            "assigned":41,"acked":39,"failed":[[7,9]],"final":false,
            "acks":"all","sent_at_ms":1700000012345}

* ``assigned`` / ``acked`` are the highest sequence stamped / acknowledged, or ``null``;
  ``failed`` lists inclusive ``[first, last]`` ranges of sends that failed with an error
  the application received; ``final`` marks the last report of a cleanly closed producer.
* ``acks`` (the producer's acks setting) and ``sent_at_ms`` are informative only.
* The key identifies the stream, so a compacted control topic keeps the latest report of
  each stream. The decoder reads the value only; the key is for compaction.

Decoding is for untrusted bytes: whatever they hold, :func:`decode_report` returns a
:class:`~gapwatch.core.model.ProducerReport` or raises :class:`ReportDecodeError`, never
anything else. Unknown fields are ignored (forward compatible within version 1); failed
ranges are normalised (sorted, merged) rather than rejected.
"""

from __future__ import annotations

import json
from typing import Any, Final

from gapwatch.core.model import ProducerReport
from gapwatch.core.wire import MAX_U64, validate_producer_id
from gapwatch.errors import GapwatchError, MalformedStampError
from gapwatch.producer.ranges import SeqRanges

REPORT_FORMAT_VERSION: Final = 1
KEY_TAG: Final = "gapwatch-report"

# Bounds for untrusted input: a report is a few hundred bytes; these only stop abuse.
MAX_REPORT_BYTES: Final = 1024 * 1024
MAX_FAILED_RANGES: Final = 100_000
MAX_TOPIC_CHARS: Final = 249  # Kafka's own limit on topic names
MAX_PARTITION: Final = 2**31 - 1


class ReportDecodeError(GapwatchError):
    """A producer report record could not be decoded; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode_report(
    report: ProducerReport, *, acks: str | None = None, sent_at_ms: int | None = None
) -> bytes:
    """The record value of ``report`` (compact JSON, UTF-8)."""
    body: dict[str, Any] = {
        "v": REPORT_FORMAT_VERSION,
        "producer": report.producer,
        "epoch": report.epoch,
        "topic": report.topic,
        "partition": report.partition,
        "assigned": report.highest_assigned,
        "acked": report.highest_acked,
        "failed": [[first, last] for first, last in report.failed],
        "final": report.final,
    }
    if acks is not None:
        body["acks"] = acks
    if sent_at_ms is not None:
        body["sent_at_ms"] = sent_at_ms
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def encode_report_key(report: ProducerReport) -> bytes:
    """The record key of ``report``: one key per stream, so compaction keeps the latest."""
    key = [
        KEY_TAG,
        REPORT_FORMAT_VERSION,
        report.producer,
        report.epoch,
        report.topic,
        report.partition,
    ]
    return json.dumps(key, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _u64(body: dict[str, Any], name: str, *, nullable: bool = False) -> int | None:
    value = body.get(name)
    if value is None:
        if nullable:
            return None
        raise ReportDecodeError(f"missing {name}")
    # bool is an int subclass in Python; true/false is not a sequence number.
    if type(value) is not int or not 0 <= value <= MAX_U64:
        raise ReportDecodeError(f"{name} is not an unsigned 64-bit integer")
    return value


def _failed_ranges(raw: object, assigned: int | None) -> tuple[tuple[int, int], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ReportDecodeError("failed is not a list")
    if len(raw) > MAX_FAILED_RANGES:
        raise ReportDecodeError("failed has too many ranges")
    ranges = SeqRanges()
    for item in raw:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or type(item[0]) is not int
            or type(item[1]) is not int
            or not 0 <= item[0] <= item[1] <= MAX_U64
        ):
            raise ReportDecodeError("failed holds an invalid range")
        if assigned is None or item[1] > assigned:
            raise ReportDecodeError("failed range above the highest assigned sequence")
        ranges.add_range(item[0], item[1])
    return ranges.as_tuples()


def decode_report(value: bytes | bytearray | memoryview | None) -> ProducerReport:
    """The report in a control-topic record value; raises :class:`ReportDecodeError`."""
    if value is None:
        raise ReportDecodeError("empty value (tombstone)")
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ReportDecodeError("value is not bytes")
    if len(value) > MAX_REPORT_BYTES:
        raise ReportDecodeError("report too large")
    try:
        body = json.loads(bytes(value))
    except (ValueError, RecursionError):
        # ValueError covers bad JSON, bad UTF-8 and over-long integers.
        raise ReportDecodeError("not JSON") from None
    if not isinstance(body, dict):
        raise ReportDecodeError("not a JSON object")
    version = body.get("v")
    if type(version) is not int:
        raise ReportDecodeError("missing format version")
    if version != REPORT_FORMAT_VERSION:
        raise ReportDecodeError(f"unsupported report version {version}")

    producer = body.get("producer")
    if not isinstance(producer, str):
        raise ReportDecodeError("bad producer: not text")
    try:
        validate_producer_id(producer)
    except MalformedStampError as exc:
        raise ReportDecodeError(f"bad producer: {exc.reason}") from None
    topic = body.get("topic")
    if not isinstance(topic, str) or not 1 <= len(topic) <= MAX_TOPIC_CHARS:
        raise ReportDecodeError("bad topic")
    partition = body.get("partition")
    if type(partition) is not int or not 0 <= partition <= MAX_PARTITION:
        raise ReportDecodeError("bad partition")
    final = body.get("final", False)
    if type(final) is not bool:
        raise ReportDecodeError("final is not a boolean")

    epoch = _u64(body, "epoch")
    assert epoch is not None
    assigned = _u64(body, "assigned", nullable=True)
    acked = _u64(body, "acked", nullable=True)
    if acked is not None and (assigned is None or acked > assigned):
        raise ReportDecodeError("acked is above the highest assigned sequence")
    return ProducerReport(
        producer=producer,
        epoch=epoch,
        topic=topic,
        partition=partition,
        highest_assigned=assigned,
        highest_acked=acked,
        failed=_failed_ranges(body.get("failed"), assigned),
        final=final,
    )
