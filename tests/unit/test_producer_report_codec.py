"""The producer-report wire format: round trips, and garbage only ever raises ReportDecodeError."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gapwatch.core.model import ProducerReport, WriteSettings
from gapwatch.core.report_codec import (
    ReportDecodeError,
    decode_report,
    decode_report_with_settings,
    encode_report,
    encode_report_key,
)
from gapwatch.errors import GapwatchError

REPORT = ProducerReport(
    producer="svc-a/42",
    epoch=1_700_000_000_000,
    topic="orders",
    partition=3,
    highest_assigned=41,
    highest_acked=39,
    failed=((7, 9), (12, 12)),
    final=True,
)


def _body(**changes: object) -> bytes:
    body = json.loads(encode_report(REPORT))
    body.update(changes)
    return json.dumps(body).encode()


class TestEncodeDecode:
    def test_round_trip(self) -> None:
        """decode(encode(r)) == r, including failed ranges and the final flag."""
        assert decode_report(encode_report(REPORT, acks="all", sent_at_ms=5)) == REPORT

    def test_nothing_acknowledged_round_trips_as_none(self) -> None:
        """acks=0 reports say 'nothing acknowledged' as null, not as -1 or 0."""
        report = ProducerReport("p", 1, "t", 0, highest_assigned=9, highest_acked=None)
        value = encode_report(report, acks="0")
        assert json.loads(value)["acked"] is None
        assert decode_report(value) == report

    def test_value_is_versioned_compact_json(self) -> None:
        """The value carries its format version and has no whitespace."""
        value = encode_report(REPORT)
        assert json.loads(value)["v"] == 1
        assert b" " not in value

    def test_key_identifies_the_stream_only(self) -> None:
        """Reports of one stream share a key (compaction); another stream differs."""
        later = ProducerReport(**{**_fields(REPORT), "highest_assigned": 99, "final": False})
        other = ProducerReport(**{**_fields(REPORT), "partition": 4})
        assert encode_report_key(REPORT) == encode_report_key(later)
        assert encode_report_key(REPORT) != encode_report_key(other)

    def test_unknown_fields_are_ignored(self) -> None:
        """Forward compatible within version 1."""
        assert decode_report(_body(future_field={"x": 1})) == REPORT

    def test_failed_ranges_are_normalised(self) -> None:
        """Unsorted or overlapping ranges from a foreign producer are merged."""
        report = decode_report(_body(failed=[[12, 12], [7, 8], [8, 9]]))
        assert report.failed == ((7, 9), (12, 12))


def _fields(report: ProducerReport) -> dict[str, object]:
    return {name: getattr(report, name) for name in report.__dataclass_fields__}


class TestRejects:
    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            (None, "tombstone"),
            (b"", "not JSON"),
            (b"\xff\xfe\x00", "not JSON"),
            (b"[" * 100_000, "not JSON"),
            (b"[1]", "not a JSON object"),
            (_body(v=2), "unsupported report version 2"),
            (_body(v=True), "missing format version"),
            (_body(producer=""), "bad producer"),
            (_body(producer=7), "bad producer"),
            (_body(topic=""), "bad topic"),
            (_body(partition=-1), "bad partition"),
            (_body(epoch=2**64), "epoch"),
            (_body(epoch=1.5), "epoch"),
            (_body(assigned=True), "assigned"),
            (_body(acked=50), "acked is above"),
            (_body(assigned=None, acked=None, failed=[[0, 0]]), "failed range above"),
            (_body(failed=[[3, 2]]), "invalid range"),
            (_body(failed={"a": 1}), "failed is not a list"),
            (_body(final="yes"), "final is not a boolean"),
            (b'{"v":1,"epoch":' + b"9" * 5000 + b"}", "not JSON"),
        ],
    )
    def test_garbage_raises_decode_error_with_reason(
        self, value: bytes | None, reason: str
    ) -> None:
        """Each kind of bad report is refused with a reason naming what is wrong."""
        with pytest.raises(ReportDecodeError, match=reason):
            decode_report(value)

    @given(st.binary(max_size=300))
    def test_arbitrary_bytes_never_escape_as_other_errors(self, value: bytes) -> None:
        """Whatever the bytes, the decoder returns a report or raises a GapwatchError."""
        with contextlib.suppress(GapwatchError):
            decode_report(value)

    @given(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(
                    st.sampled_from(
                        [
                            "v",
                            "producer",
                            "epoch",
                            "topic",
                            "partition",
                            "assigned",
                            "acked",
                            "failed",
                            "final",
                        ]
                    ),
                    inner,
                    max_size=9,
                )
            ),
            max_leaves=20,
        )
    )
    def test_arbitrary_json_never_escapes_as_other_errors(self, body: object) -> None:
        """Well-formed JSON of any shape: a report or a GapwatchError, nothing else."""
        try:
            report = decode_report(json.dumps(body).encode())
        except GapwatchError:
            return
        assert isinstance(report, ProducerReport)


class TestWriteSettings:
    """``acks`` and ``idempotence``: how the producer writes, for the durability audit."""

    def test_both_round_trip_beside_the_report(self) -> None:
        """The report decodes as before; the settings come with it."""
        value = encode_report(REPORT, acks="1", idempotence=False, sent_at_ms=5)
        assert decode_report_with_settings(value) == (
            REPORT,
            WriteSettings(acks="1", idempotence=False),
        )

    def test_absent_fields_are_unknown(self) -> None:
        """A report that says neither (an older producer) decodes with both unknown."""
        assert decode_report_with_settings(encode_report(REPORT))[1] == WriteSettings()

    @pytest.mark.parametrize(
        ("raw", "label"),
        [("all", "all"), ("-1", "all"), (-1, "all"), ("1", "1"), (1, "1"), ("0", "0"), (0, "0")],
    )
    def test_acks_spellings_of_other_clients_are_read_as_labels(
        self, raw: object, label: str
    ) -> None:
        """librdkafka's and the JVM's spellings of acks mean the same labels."""
        assert decode_report_with_settings(_body(acks=raw))[1].acks == label

    @pytest.mark.parametrize(
        ("changes", "reason"),
        [
            ({"acks": "2"}, "acks is not"),
            ({"acks": True}, "acks is not"),
            ({"acks": 1.0}, "acks is not"),
            ({"acks": ["all"]}, "acks is not"),
            ({"idempotence": "true"}, "idempotence is not a boolean"),
            ({"idempotence": 1}, "idempotence is not a boolean"),
        ],
    )
    def test_present_but_malformed_settings_are_refused(
        self, changes: dict[str, object], reason: str
    ) -> None:
        """A value that is there but not one of the documented ones is a bad report."""
        with pytest.raises(ReportDecodeError, match=reason):
            decode_report_with_settings(_body(**changes))

    @given(st.dictionaries(st.sampled_from(["acks", "idempotence"]), st.from_type(object)))
    def test_any_settings_values_decode_or_raise_decode_error(
        self, changes: dict[str, object]
    ) -> None:
        """Whatever JSON-ish values the two fields hold, only ReportDecodeError escapes."""
        try:
            value = _body(**changes)
        except (TypeError, ValueError):
            return  # not representable as JSON: nothing a producer could send
        with contextlib.suppress(ReportDecodeError):
            decode_report_with_settings(value)
