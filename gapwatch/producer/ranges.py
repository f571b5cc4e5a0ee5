"""Compact sets of sequence numbers, kept as sorted, disjoint, inclusive ranges.

A producer's failed sequences usually come in runs (a whole batch fails at once), so a
list of ``(first, last)`` pairs stays tiny even when thousands of records failed. The
common case, adding the sequence right after the last range, is O(1); anything else is
a binary search plus at most one merge with each neighbour.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator


class SeqRanges:
    """A set of non-negative integers stored as sorted, disjoint, non-adjacent ranges."""

    __slots__ = ("_count", "_firsts", "_lasts")

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._firsts: list[int] = []
        self._lasts: list[int] = []
        self._count = 0
        for first, last in ranges:
            self.add_range(first, last)

    def add(self, seq: int) -> bool:
        """Add one sequence; returns whether it was new."""
        lasts = self._lasts
        # Fast path: extending or appending after the highest range.
        if not lasts or seq > lasts[-1]:
            if not lasts and seq < 0:
                raise ValueError(f"invalid range {seq}..{seq}")
            if lasts and seq == lasts[-1] + 1:
                lasts[-1] = seq
            else:
                self._firsts.append(seq)
                lasts.append(seq)
            self._count += 1
            return True
        return self.add_range(seq, seq) == 1

    def add_range(self, first: int, last: int) -> int:
        """Add ``first..last`` inclusive; returns how many of them were new."""
        if first < 0 or last < first:
            raise ValueError(f"invalid range {first}..{last}")
        firsts, lasts = self._firsts, self._lasts
        # Ranges that overlap or touch [first, last] are those with
        # firsts[i] <= last + 1 and lasts[i] >= first - 1; they are contiguous in the list.
        hi = bisect_right(firsts, last + 1)
        lo = hi
        while lo > 0 and lasts[lo - 1] >= first - 1:
            lo -= 1
        if lo == hi:
            firsts.insert(lo, first)
            lasts.insert(lo, last)
            added = last - first + 1
        else:
            covered = sum(lasts[i] - firsts[i] + 1 for i in range(lo, hi))
            new_first = min(first, firsts[lo])
            new_last = max(last, lasts[hi - 1])
            firsts[lo:hi] = [new_first]
            lasts[lo:hi] = [new_last]
            added = (new_last - new_first + 1) - covered
        self._count += added
        return added

    def __contains__(self, seq: object) -> bool:
        if not isinstance(seq, int):
            return False
        i = bisect_right(self._firsts, seq) - 1
        return i >= 0 and seq <= self._lasts[i]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return zip(self._firsts, self._lasts, strict=True)

    def __len__(self) -> int:
        """The number of ranges (not of sequences: see :attr:`count`)."""
        return len(self._firsts)

    def __bool__(self) -> bool:
        return bool(self._firsts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SeqRanges):
            return NotImplemented
        return self._firsts == other._firsts and self._lasts == other._lasts

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"SeqRanges({self.as_tuples()!r})"

    @property
    def count(self) -> int:
        """How many sequences the set holds."""
        return self._count

    def as_tuples(self) -> tuple[tuple[int, int], ...]:
        """An immutable copy, for reports and events."""
        return tuple(zip(self._firsts, self._lasts, strict=True))
