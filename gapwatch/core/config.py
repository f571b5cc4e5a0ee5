"""The tracker's settings: defaults that an on-call engineer can defend, and validation."""

from __future__ import annotations

import math
from dataclasses import dataclass

from gapwatch.errors import TrackerConfigError

DEFAULT_GRACE_PERIOD_S = 120.0
"""Kafka's default producer ``delivery.timeout.ms`` (120 s) bounds how long a record may be
retried after later records were written, so it bounds how late a reordered record can
arrive. A gap younger than that may still heal; a shorter grace would confirm records that
are merely late. Producers with a larger ``delivery.timeout.ms`` need a larger grace."""

DEFAULT_IDLE_EVICTION_S = 6 * 3600.0
DEFAULT_MAX_STREAMS = 100_000
DEFAULT_RING_SIZE = 16_384
DEFAULT_MAX_TRACKED_GAPS = 10_000
DEFAULT_MAX_CLOSED_GAPS = 1_000


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """Settings of one :class:`~gapwatch.core.tracker.PartitionTracker`.

    * ``grace_period``: seconds a gap stays ``open`` before it may be confirmed (0 allowed).
    * ``idle_eviction``: seconds without a record after which a stream with no open gap is
      forgotten (a producer that went away). A stream that resumes later starts a new
      baseline, so loss across the silence is not seen: keep it well above producer pauses.
    * ``max_streams``: cap on streams tracked per partition; beyond it the least recently
      seen streams are evicted (counted).
    * ``ring_size``: records remembered per partition for truncation (a power of two:
      the ring index is a bit mask). A truncation deeper than this is reported with an
      ``unaccounted`` count instead of exact sequences.
    * ``max_tracked_gaps``: confirmed/truncated gaps whose ranges are still watched for
      late arrivals; beyond it the oldest are forgotten (a later arrival then reads as a
      duplicate).
    * ``max_closed_gaps``: closed gaps kept for :meth:`gaps` (the history is the monitor's).
    """

    grace_period: float = DEFAULT_GRACE_PERIOD_S
    idle_eviction: float = DEFAULT_IDLE_EVICTION_S
    max_streams: int = DEFAULT_MAX_STREAMS
    ring_size: int = DEFAULT_RING_SIZE
    max_tracked_gaps: int = DEFAULT_MAX_TRACKED_GAPS
    max_closed_gaps: int = DEFAULT_MAX_CLOSED_GAPS

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`~gapwatch.errors.TrackerConfigError` naming the first bad field."""
        for name in ("grace_period", "idle_eviction"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise TrackerConfigError(name, "must be a number of seconds")
            if not math.isfinite(value) or value < 0:
                raise TrackerConfigError(name, "must be a finite number >= 0")
        if self.idle_eviction <= self.grace_period:
            raise TrackerConfigError(
                "idle_eviction", "must be longer than grace_period, or open gaps never confirm"
            )
        for name, low in (
            ("max_streams", 1),
            ("ring_size", 1),
            ("max_tracked_gaps", 1),
            ("max_closed_gaps", 0),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise TrackerConfigError(name, f"must be an integer >= {low}")
        if self.ring_size & (self.ring_size - 1):
            raise TrackerConfigError("ring_size", "must be a power of two")
