"""The verifier's settings: typed, with defaults and validation that names the bad field.

Constructing and validating never opens a connection (:class:`VerifierConfig` is data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gapwatch.core.config import TrackerConfig
from gapwatch.errors import ConfigError, GapwatchError
from gapwatch.kafka.settings import KafkaSettings, SecuritySettings

DEFAULT_CHECKPOINT_TOPIC = "__gapwatch_verifier_checkpoints"

# The verifier never sees a log truncation (that is the monitor's job), so its trackers
# need the ring only for the reset tie-break (R8): a small ring keeps every checkpoint
# (one per flush) cheap. 1024 entries snapshot in well under a millisecond.
DEFAULT_RING_SIZE = 1024


def default_tracker_config() -> TrackerConfig:
    """The monitor's defaults (120 s grace: see ``docs/tracker.md``) with a small ring."""
    return TrackerConfig(ring_size=DEFAULT_RING_SIZE)


class VerifierConfigError(GapwatchError):
    """A verifier setting is invalid; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class VerifierConfig:
    """Settings of one :class:`~gapwatch.verifier.ConsumerVerifier`.

    * ``group_id``: the application's consumer group; it labels the metrics, keys the
      checkpoints and is whose committed offsets the verifier reads at assignment.
    * ``bootstrap_servers``: where the verifier's own clients connect.
    * ``security``: how they authenticate and encrypt (TLS, SASL, OAUTHBEARER), the same
      :class:`~gapwatch.kafka.settings.SecuritySettings` the monitor takes.
    * ``checkpoint_topic``: compacted topic holding one tracker snapshot per (group,
      topic, partition); created at start if missing.
    * ``checkpoint_interval``: seconds between background checkpoints of partitions whose
      state changed. :meth:`~gapwatch.verifier.ConsumerVerifier.flush` writes at once.
    * ``tick_interval``: seconds between looks at the application's consumer positions
      (the confirmation facts) and tracker ticks.
    * ``timeout``: bound on every Kafka call the verifier makes (start, restore, write).
    * ``tracker``: the trackers' settings; ``grace_period`` is how long a processed-gap
      waits before it may be confirmed (``docs/verifier.md``).
    """

    group_id: str
    bootstrap_servers: str | tuple[str, ...]
    checkpoint_topic: str = DEFAULT_CHECKPOINT_TOPIC
    checkpoint_interval: float = 1.0
    tick_interval: float = 0.5
    timeout: float = 30.0
    tracker: TrackerConfig = field(default_factory=default_tracker_config)
    security: SecuritySettings = field(default_factory=SecuritySettings)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`VerifierConfigError` naming the first bad field."""
        for name in ("group_id", "checkpoint_topic"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise VerifierConfigError(name, "must be a non-empty string")
        servers = self.bootstrap_servers
        if isinstance(servers, str):
            servers = (servers,)
        if not servers or not all(isinstance(s, str) and s.strip() for s in servers):
            raise VerifierConfigError("bootstrap_servers", "must name at least one host:port")
        for name in ("checkpoint_interval", "tick_interval", "timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise VerifierConfigError(name, "must be a number of seconds")
            if not math.isfinite(value) or value <= 0:
                raise VerifierConfigError(name, "must be a finite number > 0")
        if not isinstance(self.tracker, TrackerConfig):
            raise VerifierConfigError("tracker", "must be a TrackerConfig")
        if not isinstance(self.security, SecuritySettings):
            raise VerifierConfigError("security", "must be a SecuritySettings")
        try:
            self.security.validate()
        except ConfigError as exc:
            raise VerifierConfigError(f"security.{exc.key}", exc.problem) from None

    def kafka_settings(self) -> KafkaSettings:
        """Servers, client id and security of the verifier's own clients."""
        servers = self.bootstrap_servers
        if isinstance(servers, str):
            servers = tuple(servers.split(","))
        return KafkaSettings(
            bootstrap_servers=tuple(servers),
            client_id=f"gapwatch-verifier-{self.group_id}",
            security=self.security,
        )
