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
