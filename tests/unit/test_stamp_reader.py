"""The monitor's cached stamp reader against the reference parser, parse_stamp."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gapwatch.core.stamps import MAX_CACHED, StampReader
from gapwatch.core.wire import Stamp, encode_stamp, parse_stamp
from gapwatch.errors import MalformedStampError

NAMES = st.sampled_from(["gapwatch-producer", "gapwatch-epoch", "gapwatch-seq", "other", ""])
VALUES = st.one_of(
    st.none(),
    st.binary(max_size=24),
    st.integers(min_value=0, max_value=2**66).map(lambda n: str(n).encode()),
    st.sampled_from([b"p1", b"p2", b"1", b"0", b" 1", b"-1", b"\xff", b"18446744073709551616"]),
)
HEADERS = st.lists(st.tuples(NAMES, VALUES), max_size=5)


def outcome(parse: Any, headers: Any) -> Stamp | str | None:
    try:
        return parse(headers)  # type: ignore[no-any-return]
    except MalformedStampError as exc:
        return f"malformed: {exc.reason}"


class TestStampReader:
    @given(st.lists(HEADERS, max_size=8))
    def test_same_result_as_parse_stamp_for_any_headers(self, records: list[Any]) -> None:
        """Whatever the headers (and whatever came before), the reader answers exactly as
        parse_stamp: the same stamp, None, or MalformedStampError with the same reason."""
        reader = StampReader()
        for headers in records:
            assert outcome(reader.read, headers) == outcome(parse_stamp, headers)

    @given(st.integers(min_value=0, max_value=2**64 - 1), st.integers(0, 2**64 - 1))
    def test_known_producer_takes_the_fast_path_correctly(self, epoch: int, seq: int) -> None:
        """After a first record, later sequences of the same stream parse identically."""
        reader = StampReader()
        reader.read(encode_stamp("p", epoch, 0))
        headers = encode_stamp("p", epoch, seq)
        assert reader.read(headers) == Stamp("p", epoch, seq)

    def test_a_bad_sequence_from_a_known_producer_is_still_malformed(self) -> None:
        """The cache never lets a damaged sequence through."""
        reader = StampReader()
        reader.read(encode_stamp("p", 1, 0))
        for raw in (b"", b"+1", b"1 ", b"99999999999999999999"):
            headers = [*encode_stamp("p", 1, 0)[:2], ("gapwatch-seq", raw)]
            assert outcome(reader.read, headers) == outcome(parse_stamp, headers)
            assert isinstance(outcome(reader.read, headers), str)

    def test_cache_is_bounded(self) -> None:
        """Many distinct producers do not grow the cache beyond its limit."""
        reader = StampReader()
        for i in range(MAX_CACHED + 5):
            assert reader.read(encode_stamp(f"p{i}", 1, 3)) == Stamp(f"p{i}", 1, 3)
        assert len(reader.known) <= MAX_CACHED
