"""How far the consumer has read, against the high watermarks it observed: the facts
behind the confirmation rule (R11).

A fact dated ``since`` is settled once ``now >= since + grace`` and the consumer has read
up to a high watermark observed at ``>= since + grace``: by then a reordered or retried
record would have been read. This module keeps the second half (the latest time the
consumer was caught up, and the watermarks it has not reached yet) and answers the rule.
"""

from __future__ import annotations

# How many pending high-watermark observations are remembered; dropping the oldest only
# delays a confirmation (a later observation satisfies it), never makes one wrong.
MAX_PENDING_HWM = 64


class ReadProgress:
    """The latest time the consumer had read everything (``caught_up_at``) and the
    observed high watermarks not reached yet (``pending``: (watermark, observed at))."""

    __slots__ = ("caught_up_at", "grace", "pending")

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.caught_up_at = float("-inf")
        self.pending: list[tuple[int, float]] = []

    def note(self, *, read_offset: int, high_watermark: int, observed_at: float) -> None:
        """The consumer has read everything below ``read_offset``; the high watermark was
        ``high_watermark`` when observed at ``observed_at``."""
        pending = self.pending
        if high_watermark <= read_offset:
            self.caught_up_at = max(self.caught_up_at, observed_at)
        else:
            pending.append((high_watermark, observed_at))
            if len(pending) > MAX_PENDING_HWM:
                del pending[0]
        if pending:
            keep = []
            for hwm, at in pending:
                if hwm <= read_offset:
                    self.caught_up_at = max(self.caught_up_at, at)
                else:
                    keep.append((hwm, at))
            self.pending = keep

    def is_settled(self, since: float, now: float) -> bool:
        """R11 for a fact dated ``since``: grace elapsed and a later watermark was read."""
        deadline = since + self.grace
        return deadline <= now and deadline <= self.caught_up_at
