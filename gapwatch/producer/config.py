"""Configuration of producer reports: a typed, validated value with documented defaults.

Constructing or validating a :class:`ReportConfig` never opens a connection.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from gapwatch.errors import GapwatchError

DEFAULT_REPORT_TOPIC: Final = "__gapwatch_producer_reports"

# Compaction keeps the latest report of every stream; deletion after a week stops the
# topic from growing forever as producers restart (each epoch is a new set of keys).
# A stream that is still written to is re-reported every interval, so it never expires.
DEFAULT_REPORT_TOPIC_CONFIGS: Final[Mapping[str, str]] = MappingProxyType(
    {"cleanup.policy": "compact,delete", "retention.ms": str(7 * 24 * 3600 * 1000)}
)


class ProducerConfigError(GapwatchError, ValueError):
    """A producer setting is invalid; ``field`` names it."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportConfig:
    """Where and how often a producer publishes its reports.

    * ``topic``: the control topic (default ``__gapwatch_producer_reports``).
    * ``interval_s``: seconds between periodic reports (default 5). Each one carries only
      the streams that changed since the previous one; ``stop()`` sends a final report
      of every stream.
    * ``create_topic``: create the control topic with the admin API if it is missing
      (with ``topic_partitions``, ``topic_replication_factor`` (default: min(3, number of
      brokers)) and ``topic_configs``). If creating is not allowed, the broker's
      auto-creation (if enabled) is the fallback.
    * ``timeout_s``: the most a publish (and the final publish in ``stop()``) may take.
    * ``acks``: acks of the report publisher (default ``"all"``: a report that is lost
      after being acknowledged would mislead the monitor).
    """

    topic: str = DEFAULT_REPORT_TOPIC
    interval_s: float = 5.0
    create_topic: bool = True
    topic_partitions: int = 3
    topic_replication_factor: int | None = None
    topic_configs: Mapping[str, str] = field(default_factory=lambda: DEFAULT_REPORT_TOPIC_CONFIGS)
    timeout_s: float = 10.0
    acks: int | str = "all"

    def validate(self) -> ReportConfig:
        """Return ``self`` if every field is valid, else raise :class:`ProducerConfigError`."""
        if not self.topic or len(self.topic) > 249:
            raise ProducerConfigError("topic", "must be 1..249 characters")
        if not (math.isfinite(self.interval_s) and self.interval_s > 0):
            raise ProducerConfigError("interval_s", "must be a positive number of seconds")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ProducerConfigError("timeout_s", "must be a positive number of seconds")
        if self.topic_partitions < 1:
            raise ProducerConfigError("topic_partitions", "must be at least 1")
        if self.topic_replication_factor is not None and self.topic_replication_factor < 1:
            raise ProducerConfigError("topic_replication_factor", "must be at least 1")
        if self.acks not in (0, 1, -1, "all"):
            raise ProducerConfigError("acks", "must be 0, 1, -1 or 'all'")
        return self
