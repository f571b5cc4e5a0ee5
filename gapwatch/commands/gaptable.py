"""Plain-text tables of gaps for terminals (``gapwatch gaps``, ``gapwatch audit``).

Works on the JSON shape of a gap (``Gap.to_json()``), so a table can be printed from a
remote monitor's ``/gaps`` as well as from gaps found locally.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

COLUMNS: tuple[tuple[str, str], ...] = (
    ("state", "STATE"),
    ("topic", "TOPIC"),
    ("partition", "PART"),
    ("producer", "PRODUCER"),
    ("epoch", "EPOCH"),
    ("first_seq", "FIRST"),
    ("last_seq", "LAST"),
    ("count", "COUNT"),
    ("cause", "CAUSE"),
    ("offset_before", "OFF_BEFORE"),
    ("offset_after", "OFF_AFTER"),
    ("opened_at", "OPENED"),
    ("id", "ID"),
)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def render_gaps(gaps: Sequence[Mapping[str, Any]]) -> str:
    """A left-aligned table, one gap a line, with a header; a note if there are none."""
    if not gaps:
        return "no gaps"
    rows = [[header for _, header in COLUMNS]]
    for gap in gaps:
        row = [_cell(gap.get(key)) for key, _ in COLUMNS]
        if gap.get("producer_told"):
            row[COLUMNS.index(("cause", "CAUSE"))] += " (producer told)"
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    ]
    return "\n".join(lines)


def summarize(gaps: Sequence[Mapping[str, Any]]) -> str:
    """One line: how many gaps per state and how many records they hold."""
    per_state: dict[str, tuple[int, int]] = {}
    for gap in gaps:
        count, records = per_state.get(str(gap["state"]), (0, 0))
        per_state[str(gap["state"])] = (count + 1, records + int(gap["count"]))
    if not per_state:
        return "0 gaps"
    parts = [
        f"{state}: {n} gaps, {records} records" for state, (n, records) in sorted(per_state.items())
    ]
    return "; ".join(parts)
