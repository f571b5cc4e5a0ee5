"""Whose duplicates: the mirror's, or copies the source partition already held.

MirrorMaker 2 delivers at least once: after a crash it copies again from its last stored
source offset, so the target can hold a record twice that the source holds once. Those are
the mirror's duplicates. A record the source itself holds twice (a producer retry without
idempotence) arrives twice on the target through a perfect mirror; that duplicate is the
source's. Pure: the source's copy counts come from :mod:`gapwatch.kafka.source_log`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DuplicateSplit:
    """Duplicate records on the target, by who made them.

    ``unknown``: the source holds no copy of the sequence in the range read (deleted by
    retention, or beyond the read), so the duplicate cannot be placed.
    """

    mirror: int = 0
    source: int = 0
    unknown: int = 0


def split_duplicates(
    duplicate_seqs: Iterable[int], source_copies: Mapping[int, int]
) -> DuplicateSplit:
    """Split the target's duplicate records (one sequence per extra copy read) by maker.

    A sequence the source holds ``n`` times explains ``n - 1`` duplicates on the target;
    each further duplicate of it is the mirror's.
    """
    explained = {seq: copies - 1 for seq, copies in source_copies.items() if copies > 0}
    mirror = source = unknown = 0
    for seq, extra in Counter(duplicate_seqs).items():
        if seq not in explained:
            unknown += extra
            continue
        by_source = min(extra, explained[seq])
        source += by_source
        mirror += extra - by_source
    return DuplicateSplit(mirror=mirror, source=source, unknown=unknown)
