"""Exponential backoff between delivery attempts (pure: no sleeping, no clock)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Backoff:
    """Delays ``initial``, ``2 * initial``, ``4 * initial``... capped at ``maximum``."""

    initial: float
    maximum: float
    attempt: int = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call doubles the following one."""
        delay = min(self.maximum, self.initial * (2.0 ** min(self.attempt, 62)))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """A success: the next failure starts from ``initial`` again."""
        self.attempt = 0
