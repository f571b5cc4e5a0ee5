"""Comparing a load generator's truth with a monitor's gaps (gapwatch.commands.agreement)."""

from __future__ import annotations

from typing import Any

from gapwatch.commands.agreement import compare, expected_from


def stream(partition: int, producer: str, last_seq: int, **faults: list[int]) -> dict[str, Any]:
    return {
        "partition": partition,
        "producer": producer,
        "last_seq": last_seq,
        "dropped": faults.get("dropped", []),
        "duplicated": faults.get("duplicated", []),
        "reordered": faults.get("reordered", []),
    }


def gap(partition: int, producer: str, first: int, last: int, state: str) -> dict[str, Any]:
    return {
        "partition": partition,
        "producer": producer,
        "first_seq": first,
        "last_seq": last,
        "state": state,
    }


TRUTH = {
    "streams": [
        stream(0, "a", 20, dropped=[3, 4, 9, 19, 20], duplicated=[5], reordered=[12]),
        stream(1, "b", 10, dropped=[0]),
    ]
}


class TestExpected:
    def test_runs_tail_and_baseline(self) -> None:
        """Consecutive drops form one run; drops after the last sent record are tail (not
        gaps); a dropped first record is flagged as invisible."""
        expected = expected_from(TRUTH)
        assert expected.confirmed == {(0, "a", 3, 4), (0, "a", 9, 9)}
        assert expected.missing == 3
        assert expected.tail_dropped == 2
        assert expected.duplicated == 1
        assert expected.invisible == 1


class TestCompare:
    def test_exact_match_agrees(self) -> None:
        """The injected runs confirmed and a reordered record healed: agreement."""
        gaps = [
            gap(0, "a", 3, 4, "confirmed"),
            gap(0, "a", 9, 9, "confirmed"),
            gap(0, "a", 12, 12, "healed"),
        ]
        assert compare(TRUTH, gaps).agrees

    def test_missed_false_and_wrong_heal_disagree(self) -> None:
        """A missing run, an extra run and a healed non-reordered record are each named."""
        result = compare(
            TRUTH,
            [
                gap(0, "a", 3, 4, "confirmed"),
                gap(1, "b", 5, 5, "confirmed"),
                gap(0, "a", 13, 13, "healed"),
            ],
        )
        assert not result.agrees
        assert result.missed == {(0, "a", 9, 9)}
        assert result.false == {(1, "b", 5, 5)}
        assert result.healed_wrongly == {(0, "a", 13, 13)}
