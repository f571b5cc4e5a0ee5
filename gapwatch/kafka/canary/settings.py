"""The canary's configuration: what it writes, how often, and how soon it gives up.

Plain data with defaults; :meth:`CanarySettings.validate` names a bad key. Both
``gapwatch monitor --canary`` and ``gapwatch canary`` use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gapwatch.errors import ConfigError

DEFAULT_CANARY_TOPIC: Final = "__gapwatch_canary"


@dataclass(frozen=True, slots=True)
class CanarySettings:
    """``rate``: records per second to each partition (so per broker); ``request_timeout``:
    seconds a write may take before it counts as failed and is retried with the same stamp;
    ``window``: seconds since a broker's last acknowledged write within which it is still
    available; ``check_interval``: seconds between metadata checks (leaders, placement,
    elections); ``departure``: seconds a broker must be missing from the metadata before its
    partition is moved away (a paused or restarting broker is not moved)."""

    enabled: bool = False
    topic: str = DEFAULT_CANARY_TOPIC
    rate: float = 2.0
    request_timeout: float = 2.0
    window: float = 5.0
    check_interval: float = 2.0
    departure: float = 600.0
    value_size: int = 64

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the key of an out-of-range value."""
        if not self.topic:
            raise ConfigError("canary_topic", "must not be empty")
        if not 0.0 < self.rate <= 50.0:
            raise ConfigError("canary_rate", "must be in (0, 50] records/s per partition")
        if self.request_timeout <= 0.0:
            raise ConfigError("canary_request_timeout", "must be > 0")
        if self.window < self.request_timeout:
            # A write may legitimately take request_timeout; a shorter window would flap.
            raise ConfigError("canary_window", "must be at least canary_request_timeout")
        if self.window < 1.0 / self.rate:
            raise ConfigError("canary_window", "must be at least one write interval (1/rate)")
        if self.check_interval <= 0.0:
            raise ConfigError("canary_check_interval", "must be > 0")
        if self.departure < self.check_interval:
            raise ConfigError("canary_departure", "must be at least canary_check_interval")
        if not 1 <= self.value_size <= 10_000:
            raise ConfigError("canary_value_size", "must be in [1, 10000] bytes")
