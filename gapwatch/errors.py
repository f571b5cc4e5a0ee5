"""The project's own exception types.

Everything gapwatch raises on purpose derives from :class:`GapwatchError`, so callers
(and the monitor's hot path) can catch exactly what is documented and nothing else.
"""

from __future__ import annotations


class GapwatchError(Exception):
    """Base class of every error gapwatch raises deliberately."""


class MalformedStampError(GapwatchError):
    """A record carries gapwatch headers that cannot be trusted.

    ``reason`` is a short, stable, human-readable explanation, suitable as a log field
    (for example ``"missing gapwatch-seq"`` or ``"gapwatch-epoch is not decimal"``).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SnapshotError(GapwatchError):
    """A tracker snapshot cannot be restored (damaged, foreign, or of an unknown version).

    ``reason`` says what was wrong; the caller should start the partition from scratch
    (and say so) rather than trust a half-read state.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TrackerConfigError(GapwatchError):
    """A tracker setting is out of range; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
