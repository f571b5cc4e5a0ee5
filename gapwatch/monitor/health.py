"""What a running monitor counts about itself besides the trackers' counters.

The checkpoint rounds, the rebalance handler and the report reader add to these plain
ints; the metrics collector reads them at scrape time (``gapwatch_checkpoints_total``
and the others in ``docs/metrics.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class MonitorHealth:
    """Process-level facts the collector reports besides the per-partition ones."""

    checkpoints: int = 0
    checkpoint_failures: int = 0
    commit_failures: int = 0
    checkpoints_too_large: int = 0
    checkpoint_restore_failures: int = 0
    reports_read: int = 0
    reports_malformed: int = 0
    subscriber_failures: dict[str, int] = field(default_factory=dict)
