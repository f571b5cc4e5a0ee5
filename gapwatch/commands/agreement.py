"""Compare what ``gapwatch loadgen`` injected with what a monitor reported. Pure.

The load generator's truth (``docs/loadgen.md``) lists, per stream, the dropped,
duplicated and reordered sequences. What a monitor must report for it:

1. **Confirmed gaps**: every run of consecutive dropped sequences that has a later sent
   record in its stream, as one gap (partition, producer, first, last).
2. **Tail drops** (dropped after the stream's last sent record) cannot show as a sequence
   gap: nothing comes after them. A clean producer's final report makes them unknown fate.
3. **Duplicates**: one per duplicated sequence. **Reordered** records arrive late and heal
   the gap they opened: no confirmed gap contains one.

A lost or duplicated *first* record of a stream is its baseline (tracker rules R2, R8)
and cannot be seen; :func:`compare` says so instead of reporting a disagreement.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Run = tuple[int, str, int, int]  # partition, producer, first_seq, last_seq


@dataclass(frozen=True, slots=True)
class Expected:
    """What the monitor should report for one load-generator run."""

    confirmed: frozenset[Run]
    missing: int
    tail_dropped: int
    duplicated: int
    reordered: frozenset[tuple[int, str, int]]
    invisible: int  # dropped or duplicated first records (baselines)


@dataclass(frozen=True, slots=True)
class Agreement:
    """The comparison: ``agrees`` and, if not, which runs differ."""

    expected: Expected
    found: frozenset[Run]
    healed: frozenset[Run]

    @property
    def missed(self) -> frozenset[Run]:
        """Injected drops the monitor did not confirm."""
        return self.expected.confirmed - self.found

    @property
    def false(self) -> frozenset[Run]:
        """Confirmed gaps that were not injected."""
        return self.found - self.expected.confirmed

    @property
    def healed_wrongly(self) -> frozenset[Run]:
        """Healed gaps holding a sequence that was not reordered."""
        return frozenset(
            run
            for run in self.healed
            if any((run[0], run[1], q) not in self.expected.reordered for q in _seqs(run))
        )

    @property
    def agrees(self) -> bool:
        """Exactly the injected runs confirmed, and only reordered records healed."""
        return not self.missed and not self.false and not self.healed_wrongly


def _seqs(run: Run) -> range:
    return range(run[2], run[3] + 1)


def _runs(partition: int, producer: str, seqs: Sequence[int]) -> Iterable[Run]:
    start = None
    for i, seq in enumerate(seqs):
        if start is None:
            start = seq
        if i + 1 == len(seqs) or seqs[i + 1] != seq + 1:
            yield (partition, producer, start, seq)
            start = None


def expected_from(truth: Mapping[str, Any]) -> Expected:
    """What a monitor must report for ``truth`` (rules 1-3 of the module docstring)."""
    confirmed: set[Run] = set()
    missing = tail = duplicated = invisible = 0
    reordered: set[tuple[int, str, int]] = set()
    for stream in truth["streams"]:
        partition, producer = int(stream["partition"]), str(stream["producer"])
        dropped = set(stream["dropped"])
        if stream["last_seq"] is None:
            continue
        sent = [s for s in range(stream["last_seq"] + 1) if s not in dropped]
        last_sent = max(sent) if sent else -1
        # Drops before the first sent record: that record is the stream's baseline.
        head = next((s for s in range(last_sent + 1) if s not in dropped), 0)
        inner = sorted(s for s in dropped if head < s < last_sent)
        missing += len(inner)
        tail += sum(1 for s in dropped if s > last_sent)
        confirmed.update(_runs(partition, producer, inner))
        duplicated += len(stream["duplicated"])
        reordered.update((partition, producer, q) for q in stream["reordered"])
        invisible += head + int(0 in stream["duplicated"])
    return Expected(
        frozenset(confirmed), missing, tail, duplicated, frozenset(reordered), invisible
    )


def compare(truth: Mapping[str, Any], gaps: Iterable[Mapping[str, Any]]) -> Agreement:
    """Compare ``truth`` with gaps in ``/gaps`` JSON shape (all states)."""
    found: set[Run] = set()
    healed: set[Run] = set()
    for gap in gaps:
        run = (int(gap["partition"]), str(gap["producer"]), gap["first_seq"], gap["last_seq"])
        if gap["state"] == "confirmed":
            found.add(run)
        elif gap["state"] == "healed":
            healed.add(run)
    return Agreement(expected_from(truth), frozenset(found), frozenset(healed))
