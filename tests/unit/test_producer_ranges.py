"""SeqRanges: failed sequences kept as compact, exact ranges."""

from __future__ import annotations

import random

import pytest

from gapwatch.producer.ranges import SeqRanges


class TestSeqRanges:
    def test_consecutive_adds_make_one_range(self) -> None:
        """A failed batch of consecutive sequences is stored as a single range."""
        ranges = SeqRanges()
        for seq in range(10, 20):
            assert ranges.add(seq)
        assert ranges.as_tuples() == ((10, 19),)
        assert ranges.count == 10
        assert len(ranges) == 1

    def test_adding_twice_is_not_new(self) -> None:
        """The same sequence counts once."""
        ranges = SeqRanges([(3, 5)])
        assert not ranges.add(4)
        assert ranges.count == 3

    def test_gap_filled_merges_neighbours(self) -> None:
        """Filling the hole between two ranges joins them."""
        ranges = SeqRanges([(0, 2), (4, 6)])
        assert ranges.add(3)
        assert ranges.as_tuples() == ((0, 6),)
        assert ranges.count == 7

    def test_range_spanning_several_ranges(self) -> None:
        """A wide range swallows every range it touches and counts only new sequences."""
        ranges = SeqRanges([(0, 1), (5, 6), (9, 9), (20, 21)])
        assert ranges.add_range(2, 10) == 9 - 3  # 2..10 minus the already present 5,6,9
        assert ranges.as_tuples() == ((0, 10), (20, 21))

    def test_out_of_order_adds(self) -> None:
        """Adds in any order give the same sorted, disjoint ranges."""
        ranges = SeqRanges()
        for seq in (9, 1, 5, 2, 8, 0):
            ranges.add(seq)
        assert ranges.as_tuples() == ((0, 2), (5, 5), (8, 9))
        assert 5 in ranges
        assert 3 not in ranges
        assert "5" not in ranges

    def test_invalid_range_rejected(self) -> None:
        """A reversed or negative range is a programming error."""
        with pytest.raises(ValueError, match="invalid range"):
            SeqRanges().add_range(5, 4)
        with pytest.raises(ValueError, match="invalid range"):
            SeqRanges().add(-1)

    def test_matches_a_plain_set(self) -> None:
        """Against a set model, over random adds: same members, count and canonical form."""
        rng = random.Random(7)
        for _ in range(200):
            model: set[int] = set()
            ranges = SeqRanges()
            for _ in range(rng.randrange(1, 60)):
                first = rng.randrange(0, 80)
                last = first + rng.randrange(0, 4)
                new = set(range(first, last + 1)) - model
                assert ranges.add_range(first, last) == len(new)
                model |= new
            assert ranges.count == len(model)
            assert {s for a, b in ranges for s in range(a, b + 1)} == model
            pairs = ranges.as_tuples()
            # Canonical: sorted, and separated by at least one missing sequence.
            assert all(pairs[i][1] + 1 < pairs[i + 1][0] for i in range(len(pairs) - 1))
