"""``AlertPolicy``: the timings and limits of the Alertmanager alert rules. Pure data.

The rules that use it are numbered in :mod:`gapwatch.alerting.alertbook`; the alert texts
built in :mod:`gapwatch.alerting.alertkinds` quote some of its limits and link to
``external_url``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """Timings and limits of the alert rules (see :mod:`gapwatch.alerting.alertbook`)."""

    loss_hold: float = 900.0
    repost_interval: float = 60.0
    max_per_partition: int = 10
    duplicate_threshold: int = 100
    duplicate_window: float = 60.0
    duplicate_hold: float = 600.0
    external_url: str = "http://127.0.0.1:8571"
    instance: str = ""

    @property
    def firing_ttl(self) -> float:
        """How far ahead ``endsAt`` of a firing alert is set (rule 5)."""
        return 4.0 * self.repost_interval
