"""Duplicates on a mirrored topic split by who made them (gapwatch.core.mirror_duplicates)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from gapwatch.core.mirror_duplicates import DuplicateSplit, split_duplicates


def test_a_sequence_held_once_by_the_source_is_a_mirror_duplicate() -> None:
    assert split_duplicates([5, 6, 7], {5: 1, 6: 1, 7: 1}) == DuplicateSplit(mirror=3)


def test_a_sequence_held_twice_by_the_source_explains_one_duplicate() -> None:
    """Target copies 3 of seq 5, source 2: one duplicate is the source's, one the mirror's."""
    assert split_duplicates([5, 5], {5: 2}) == DuplicateSplit(mirror=1, source=1)


def test_a_sequence_the_source_no_longer_holds_is_unknown() -> None:
    assert split_duplicates([5, 9], {5: 1}) == DuplicateSplit(mirror=1, unknown=1)
    assert split_duplicates([9], {9: 0}) == DuplicateSplit(unknown=1)


@given(
    target_extra=st.dictionaries(st.integers(0, 20), st.integers(1, 4)),
    source_copies=st.dictionaries(st.integers(0, 20), st.integers(0, 4)),
)
def test_every_duplicate_is_placed_once(
    target_extra: dict[int, int], source_copies: dict[int, int]
) -> None:
    """The parts add up to the duplicates; the source never explains more than it holds."""
    seqs = [seq for seq, extra in target_extra.items() for _ in range(extra)]
    split = split_duplicates(seqs, source_copies)
    assert split.mirror + split.source + split.unknown == len(seqs)
    by_seq = Counter(seqs)
    assert split.source == sum(
        min(extra, max(0, source_copies.get(seq, 0) - 1)) for seq, extra in by_seq.items()
    )
