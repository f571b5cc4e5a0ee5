"""The wire format of producer reports: one JSON record per stream on the control topic.

Version 1, a public contract (``docs/producer.md``) so that producers in other
languages can publish reports too::

    key:   ["gapwatch-report",1,"<producer>",<epoch>,"<topic>",<partition>]
    value: {"v":1,"producer":"...","epoch":1700000000000,"topic":"orders","partition":3,
            "assigned":41,"acked":39,"failed":[[7,9]],"final":false,
            "acks":"all","idempotence":true,"sent_at_ms":1700000012345}

* ``assigned`` / ``acked`` are the highest sequence stamped / acknowledged, or ``null``;
  ``failed`` lists inclusive ``[first, last]`` ranges of sends that failed with an error
  the application received; ``final`` marks the last report of a cleanly closed producer.
* ``acks`` (the producer's acks setting: ``"0"``, ``"1"`` or ``"all"``; ``"-1"``, ``-1``,
  ``0`` and ``1`` are read as those) and ``idempotence`` (``true``/``false``: whether the
  client's idempotent producer is on) are optional: they do not change what the tracker
  decides, but the durability audit names a producer that writes with ``acks`` other than
  ``all`` or without idempotence (:func:`decode_report_with_settings`). ``sent_at_ms`` is
  informative only.
* The key identifies the stream, so a compacted control topic keeps the latest report of
  each stream. The decoder reads the value only; the key is for compaction.

Decoding is for untrusted bytes: whatever they hold, :func:`decode_report` returns a
:class:`~gapwatch.core.model.ProducerReport` or raises :class:`ReportDecodeError`, never
anything else. Unknown fields are ignored (forward compatible within version 1); failed
ranges are normalised (sorted, merged) rather than rejected.

What makes a :class:`~gapwatch.core.model.ProducerReport` well-formed whatever built it
(this decoder, or an adapter that parsed JSON of its own) is checked in one place,
:func:`validate_report`, which the decoder and the tracker (rule R12) both apply. The
decoder adds what only the wire contract says (a version, bounded sizes, nothing acked or
failed above the highest assigned sequence).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

from gapwatch.core.model import ProducerReport, WriteSettings
from gapwatch.core.wire import MAX_U64, validate_producer_id
from gapwatch.errors import GapwatchError, MalformedStampError

REPORT_FORMAT_VERSION: Final = 1
KEY_TAG: Final = "gapwatch-report"

# Bounds for untrusted input: a report is a few hundred bytes; these only stop abuse.
MAX_REPORT_BYTES: Final = 1024 * 1024
MAX_FAILED_RANGES: Final = 100_000
MAX_TOPIC_CHARS: Final = 249  # Kafka's own limit on topic names
MAX_PARTITION: Final = 2**31 - 1
# The acks values a report may carry, as the audit compares them.
_ACKS_ON_WIRE: Final[Mapping[str | int, str]] = {
    "0": "0",
    "1": "1",
    "all": "all",
    "-1": "all",
    0: "0",
    1: "1",
    -1: "all",
}


class ReportDecodeError(GapwatchError):
    """A producer report could not be decoded, or is not well-formed; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode_report(
    report: ProducerReport,
    *,
    acks: str | None = None,
    idempotence: bool | None = None,
    sent_at_ms: int | None = None,
) -> bytes:
    """The record value of ``report`` (compact JSON, UTF-8); ``acks`` and ``idempotence``
    say how the producer writes (left out when ``None``)."""
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
    if idempotence is not None:
        body["idempotence"] = idempotence
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


def validate_report(report: ProducerReport) -> None:
    """Raise :class:`ReportDecodeError` unless every field of ``report`` has a type and
    range a report can have: a text producer, unsigned 64-bit epoch and sequences (or
    ``None``), and failed ranges as ``(first, last)`` tuples with ``first <= last``."""
    if not isinstance(report.producer, str):
        raise ReportDecodeError("bad producer: not text")
    if not _is_u64(report.epoch):
        raise ReportDecodeError("epoch is not an unsigned 64-bit integer")
    for name, value in (("assigned", report.highest_assigned), ("acked", report.highest_acked)):
        if value is not None and not _is_u64(value):
            raise ReportDecodeError(f"{name} is not an unsigned 64-bit integer")
    failed: object = report.failed  # an adapter may have built it from JSON: check it
    if not isinstance(failed, tuple):
        raise ReportDecodeError("failed is not a tuple")
    for r in failed:
        if not (isinstance(r, tuple) and len(r) == 2 and _is_u64(r[0]) and _is_u64(r[1])):
            raise ReportDecodeError("failed holds an invalid range")
        if r[0] > r[1]:
            raise ReportDecodeError("failed holds an invalid range")


def _is_u64(value: object) -> bool:
    # bool is an int subclass in Python; true/false is not a sequence number.
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_U64


def _int_field(body: dict[str, Any], name: str, *, nullable: bool = False) -> int | None:
    value = body.get(name)
    if value is None:
        if nullable:
            return None
        raise ReportDecodeError(f"missing {name}")
    if type(value) is not int:
        raise ReportDecodeError(f"{name} is not an unsigned 64-bit integer")
    return value


def _failed_ranges(raw: object) -> tuple[tuple[int, int], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ReportDecodeError("failed is not a list")
    if len(raw) > MAX_FAILED_RANGES:
        raise ReportDecodeError("failed has too many ranges")
    ranges = []
    for item in raw:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or type(item[0]) is not int
            or type(item[1]) is not int
        ):
            raise ReportDecodeError("failed holds an invalid range")
        ranges.append((item[0], item[1]))
    return tuple(ranges)


def _merged(ranges: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    # Sorted, with overlapping and adjacent ranges joined.
    out: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return tuple(out)


def decode_report(value: bytes | bytearray | memoryview | None) -> ProducerReport:
    """The report in a control-topic record value; raises :class:`ReportDecodeError`."""
    return decode_report_with_settings(value)[0]


def decode_report_with_settings(
    value: bytes | bytearray | memoryview | None,
) -> tuple[ProducerReport, WriteSettings]:
    """The report in a control-topic record value and how its producer says it writes;
    raises :class:`ReportDecodeError` (also for an ``acks`` or ``idempotence`` that is
    present but not one of the values above)."""
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

    epoch = _int_field(body, "epoch")
    assert epoch is not None
    report = ProducerReport(
        producer=producer,
        epoch=epoch,
        topic=topic,
        partition=partition,
        highest_assigned=_int_field(body, "assigned", nullable=True),
        highest_acked=_int_field(body, "acked", nullable=True),
        failed=_failed_ranges(body.get("failed")),
        final=final,
    )
    validate_report(report)
    assigned, acked = report.highest_assigned, report.highest_acked
    if acked is not None and (assigned is None or acked > assigned):
        raise ReportDecodeError("acked is above the highest assigned sequence")
    if any(assigned is None or last > assigned for _, last in report.failed):
        raise ReportDecodeError("failed range above the highest assigned sequence")
    return replace(report, failed=_merged(report.failed)), _write_settings(body)


def _write_settings(body: dict[str, Any]) -> WriteSettings:
    raw_acks = body.get("acks")
    acks: str | None = None
    if raw_acks is not None:
        if isinstance(raw_acks, bool) or not isinstance(raw_acks, str | int):
            raise ReportDecodeError("acks is not 0, 1, -1 or all")
        acks = _ACKS_ON_WIRE.get(raw_acks)
        if acks is None:
            raise ReportDecodeError("acks is not 0, 1, -1 or all")
    idempotence = body.get("idempotence")
    if idempotence is not None and type(idempotence) is not bool:
        raise ReportDecodeError("idempotence is not a boolean")
    return WriteSettings(acks=acks, idempotence=idempotence)
