"""Producer settings: the config error, the one ``acks`` rule, and the report config.

* :class:`ProducerConfigError`: every invalid producer setting raises it, naming the field.
* :func:`acks_label` / :func:`aiokafka_acks` / :func:`default_acks_label`: the one rule for
  the ``acks`` setting, used by the report publisher, the load generator, :class:`Stamper`
  and :class:`StampedProducer`. Accepted: ``0``, ``1``, ``-1`` and ``"all"`` (aiokafka's
  values; ``-1`` and ``"all"`` mean the same) and their text forms ``"0"``, ``"1"`` and
  ``"-1"``, as other clients' configs (librdkafka) spell them.
* :class:`ReportConfig`: where and how often producer reports are published; constructing
  or validating one never opens a connection.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal

from gapwatch.errors import GapwatchError
from gapwatch.kafka.topics import REPORT_TOPIC, REPORT_TOPIC_CONFIGS

# The report topic's name and settings are one fact shared with the monitor, which creates
# the topic when it starts first.
DEFAULT_REPORT_TOPIC: Final = REPORT_TOPIC


class ProducerConfigError(GapwatchError, ValueError):
    """A producer setting is invalid; ``field`` names it."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


AcksLabel = Literal["0", "1", "all"]
"""The acks setting as reports show it."""

_ACKS_LABELS: Final[Mapping[object, AcksLabel]] = MappingProxyType(
    {0: "0", "0": "0", 1: "1", "1": "1", -1: "all", "-1": "all", "all": "all"}
)


def acks_label(acks: object) -> AcksLabel:
    """``acks`` as reports show it (``"0"``, ``"1"`` or ``"all"``), or raise
    :class:`ProducerConfigError` if it is not an accepted value."""
    try:
        return _ACKS_LABELS[acks]
    except (KeyError, TypeError):  # TypeError: an unhashable value
        raise ProducerConfigError("acks", "must be 0, 1, -1 or 'all'") from None


def aiokafka_acks(acks: object) -> int | str:
    """``acks`` as ``AIOKafkaProducer`` takes it: ``0``, ``1`` or ``"all"``."""
    label = acks_label(acks)
    return "all" if label == "all" else int(label)


def default_acks_label(*, idempotent: bool) -> AcksLabel:
    """aiokafka's acks when none is given: all with idempotence, else 1."""
    return "all" if idempotent else "1"


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
    topic_configs: Mapping[str, str] = field(default_factory=lambda: REPORT_TOPIC_CONFIGS)
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
        acks_label(self.acks)
        return self
