"""Wire format v1: stamping, parsing, and the parser's behaviour on hostile headers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gapwatch.core.wire import (
    HEADER_EPOCH,
    HEADER_PRODUCER,
    HEADER_SEQ,
    MAX_U64,
    Stamp,
    encode_stamp,
    parse_stamp,
)
from gapwatch.errors import GapwatchError, MalformedStampError

producer_ids = st.text(min_size=1, max_size=128).filter(str.isprintable)
u64 = st.integers(min_value=0, max_value=MAX_U64)


class TestRoundTrip:
    @given(producer=producer_ids, epoch=u64, seq=u64)
    def test_encode_then_parse_gives_the_stamp_back(
        self, producer: str, epoch: int, seq: int
    ) -> None:
        """Whatever valid stamp is encoded, parsing its headers yields the same stamp."""
        assert parse_stamp(encode_stamp(producer, epoch, seq)) == Stamp(producer, epoch, seq)

    def test_other_headers_are_ignored(self) -> None:
        """Application headers around the stamp do not disturb it."""
        headers = [("trace", b"x"), *encode_stamp("p", 1, 2), ("gapwatch-other", None)]
        assert parse_stamp(headers) == Stamp("p", 1, 2)

    def test_encoded_values_are_ascii_decimal(self) -> None:
        """The documented contract: decimal ASCII values, producer id in UTF-8."""
        assert encode_stamp("ü", 10, 0) == [
            (HEADER_PRODUCER, "ü".encode()),
            (HEADER_EPOCH, b"10"),
            (HEADER_SEQ, b"0"),
        ]


class TestUnstamped:
    @pytest.mark.parametrize("headers", [None, [], [("trace", b"1")], (("a", None),)])
    def test_no_gapwatch_headers_is_unstamped(self, headers: object) -> None:
        """Records without any of the three headers are unstamped (None), not malformed."""
        assert parse_stamp(headers) is None  # type: ignore[arg-type]


class TestMalformed:
    @pytest.mark.parametrize(
        ("headers", "reason"),
        [
            ([(HEADER_PRODUCER, b"p"), (HEADER_EPOCH, b"1")], "missing gapwatch-seq"),
            ([(HEADER_SEQ, b"1"), (HEADER_EPOCH, b"1")], "missing gapwatch-producer"),
            ([(HEADER_PRODUCER, b"p"), (HEADER_SEQ, b"1")], "missing gapwatch-epoch"),
            ([*encode_stamp("p", 1, 1), (HEADER_SEQ, b"2")], "gapwatch-seq is repeated"),
            (
                [(HEADER_PRODUCER, b"p"), (HEADER_EPOCH, b"-1"), (HEADER_SEQ, b"1")],
                "gapwatch-epoch is not an unsigned decimal integer",
            ),
            (
                [
                    (HEADER_PRODUCER, b"p"),
                    (HEADER_EPOCH, b"1"),
                    (HEADER_SEQ, b"18446744073709551616"),
                ],
                "gapwatch-seq does not fit in 64 bits",
            ),
            (
                [(HEADER_PRODUCER, b"\xff"), (HEADER_EPOCH, b"1"), (HEADER_SEQ, b"1")],
                "gapwatch-producer is not UTF-8",
            ),
            (
                [(HEADER_PRODUCER, b""), (HEADER_EPOCH, b"1"), (HEADER_SEQ, b"1")],
                "gapwatch-producer must be 1..128 characters",
            ),
            (
                [(HEADER_PRODUCER, b"a\nb"), (HEADER_EPOCH, b"1"), (HEADER_SEQ, b"1")],
                "gapwatch-producer has non-printable characters",
            ),
            (
                [(HEADER_PRODUCER, b"p"), (HEADER_EPOCH, None), (HEADER_SEQ, b"1")],
                "gapwatch-epoch is not an unsigned decimal integer",
            ),
            (
                [(HEADER_PRODUCER, b"p"), (HEADER_EPOCH, b" 1"), (HEADER_SEQ, b"1")],
                "gapwatch-epoch is not an unsigned decimal integer",
            ),
        ],
    )
    def test_partial_or_unparsable_stamp_is_malformed_with_a_reason(
        self, headers: list[tuple[str, bytes | None]], reason: str
    ) -> None:
        """Some-but-not-all headers, repeats and bad values raise with a stable reason."""
        with pytest.raises(MalformedStampError) as info:
            parse_stamp(headers)
        assert info.value.reason == reason

    def test_malformed_is_a_gapwatch_error(self) -> None:
        """Callers can catch the project's base error."""
        assert issubclass(MalformedStampError, GapwatchError)

    @pytest.mark.parametrize("bad", [[1, 2], [("a",)], [("a", b"1", b"2")], 5, [None]])
    def test_non_pairs_are_malformed_not_a_crash(self, bad: object) -> None:
        """A header list that is not (name, value) pairs is malformed, never TypeError."""
        with pytest.raises(MalformedStampError):
            parse_stamp(bad)  # type: ignore[arg-type]


# --- fuzzing -------------------------------------------------------------------------

names = st.one_of(
    st.sampled_from([HEADER_PRODUCER, HEADER_EPOCH, HEADER_SEQ, "trace", ""]),
    st.text(max_size=20),
)
values = st.one_of(
    st.none(),
    st.binary(max_size=40),
    st.text(max_size=30).map(str.encode),
    st.integers(min_value=-5, max_value=2**70).map(lambda i: str(i).encode()),
    st.text(max_size=10),  # a wrong type: str where bytes are expected
)
header_lists = st.lists(st.tuples(names, values), max_size=8)


class TestFuzz:
    @settings(max_examples=600, deadline=None)
    @given(headers=header_lists)
    def test_any_header_list_parses_or_raises_the_documented_error(
        self, headers: list[tuple[str, object]]
    ) -> None:
        """Arbitrary headers: a valid Stamp, None, or MalformedStampError; nothing else."""
        reason = None
        result = None
        try:
            result = parse_stamp(headers)  # type: ignore[arg-type]
        except MalformedStampError as exc:
            reason = exc.reason
        if reason is not None:
            assert reason, "a malformed record always says why"
        elif result is not None:
            assert isinstance(result, Stamp)
            assert 0 <= result.epoch <= MAX_U64
            assert 0 <= result.seq <= MAX_U64
            assert 1 <= len(result.producer) <= 128

    @settings(max_examples=300, deadline=None)
    @given(
        producer=st.one_of(st.binary(max_size=140), st.none()),
        epoch=st.one_of(st.binary(max_size=24), st.none()),
        seq=st.one_of(st.binary(max_size=24), st.none()),
    )
    def test_all_three_headers_with_arbitrary_bytes(
        self, producer: bytes | None, epoch: bytes | None, seq: bytes | None
    ) -> None:
        """All three present with random bytes: parsed exactly when each is valid."""
        headers = [(HEADER_PRODUCER, producer), (HEADER_EPOCH, epoch), (HEADER_SEQ, seq)]
        try:
            stamp = parse_stamp(headers)
        except MalformedStampError:
            return
        assert stamp is not None
        assert str(stamp.epoch).encode() == epoch.lstrip(b"0").rjust(1, b"0")  # type: ignore[union-attr]
        assert str(stamp.seq).encode() == seq.lstrip(b"0").rjust(1, b"0")  # type: ignore[union-attr]


class TestEncodeValidation:
    @pytest.mark.parametrize(
        ("producer", "epoch", "seq"),
        [("", 1, 1), ("x" * 129, 1, 1), ("p", -1, 0), ("p", 0, MAX_U64 + 1), ("a\x00", 0, 0)],
    )
    def test_encode_refuses_what_parse_would_reject(
        self, producer: str, epoch: int, seq: int
    ) -> None:
        """A producer cannot emit a stamp the monitor would call malformed."""
        with pytest.raises(MalformedStampError):
            encode_stamp(producer, epoch, seq)
