"""Per-partition counters the monitor exposes as metrics, kept as plain ints.

The tracker updates them as it decides, so a metrics scrape reads a handful of attributes
instead of walking every stream.
"""

from __future__ import annotations

from typing import Final

COUNTER_NAMES: Final = (
    "records",
    "missing",
    "gaps_confirmed",
    "open_gaps",
    "duplicates",
    "late",
    "recovered",
    "unstamped",
    "malformed",
    "resets",
    "evictions",
    "truncated",
    "truncated_unaccounted",
    "streams",
    "zombies",
    "unknown_fate",
    "reports_unmatched",
    "gaps_forgotten",
    "gaps_unknown",
    "truncations_beyond_ring",
)


class TrackerCounters:
    """Monotonic counters (``*_total`` metrics) and two gauges (``open_gaps``, ``streams``).

    * ``records``: stamped records observed; ``unstamped`` / ``malformed``: the others.
    * ``missing``: sequences confirmed lost; ``gaps_confirmed``: confirmed gaps.
    * ``duplicates``, ``late`` (filled an open gap, or preceded the stream's baseline),
      ``recovered`` (arrived after confirmation), ``resets``, ``zombies``.
    * ``truncated``: already-read records removed by a truncation (exact, from the ring);
      ``truncated_unaccounted``: truncated offsets older than the ring.
    * ``evictions``: streams forgotten (idle or cap); ``gaps_forgotten``: watched gaps
      dropped by ``max_tracked_gaps``.
    * ``unknown_fate``: unacknowledged sequences of a closed producer that never arrived.
    * ``reports_unmatched``: producer reports about streams this partition never saw.
    * ``gaps_unknown``: gaps that were open when retention deleted unread offsets and were
      then neither healed nor called lost (R16); ``truncations_beyond_ring``: log
      divergences that reached the ring's oldest record (depth unknown, R13).
    """

    __slots__ = COUNTER_NAMES

    def __init__(self) -> None:
        for name in COUNTER_NAMES:
            setattr(self, name, 0)

    records: int
    missing: int
    gaps_confirmed: int
    open_gaps: int
    duplicates: int
    late: int
    recovered: int
    unstamped: int
    malformed: int
    resets: int
    evictions: int
    truncated: int
    truncated_unaccounted: int
    streams: int
    zombies: int
    unknown_fate: int
    reports_unmatched: int
    gaps_forgotten: int
    gaps_unknown: int
    truncations_beyond_ring: int

    def as_dict(self) -> dict[str, int]:
        """All counters by name (a copy)."""
        return {name: getattr(self, name) for name in COUNTER_NAMES}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.as_dict().items() if v)
        return f"TrackerCounters({inner})"
