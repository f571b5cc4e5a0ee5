"""Typed configuration of the monitor: one frozen section per subsystem, with defaults.

The sections are plain data; building them never opens a connection. Where values come
from (flags, ``GAPWATCH_*`` variables, a YAML file) and in which order they win is
decided in exactly one place, :mod:`gapwatch.monitor.config_sources`; this module only
says what a valid configuration is. :meth:`MonitorConfig.validate` checks the rules that
span several fields and raises :class:`ConfigError` naming the offending key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from gapwatch.core.config import (
    DEFAULT_GRACE_PERIOD_S,
    DEFAULT_IDLE_EVICTION_S,
    DEFAULT_MAX_STREAMS,
    TrackerConfig,
)
from gapwatch.core.replication import REPLICATION_POLICIES, ReplicationPolicy
from gapwatch.errors import ConfigError, TrackerConfigError
from gapwatch.kafka.canary.settings import CanarySettings
from gapwatch.kafka.settings import KafkaSettings, SecuritySettings

StartFrom = Literal["earliest", "latest"]
MetricsGranularity = Literal["partition", "topic"]


@dataclass(frozen=True, slots=True)
class WatchSettings:
    """What to watch, and as which consumer group."""

    topics: tuple[str, ...] = ()
    topic_pattern: str | None = None
    group_id: str = "gapwatch"
    start_from: StartFrom = "latest"
    allow_compacted: bool = False

    def validate(self) -> None:
        """Raise :class:`ConfigError` unless exactly one way of naming topics is used."""
        if bool(self.topics) == (self.topic_pattern is not None):
            raise ConfigError("topic", "give either topic (one or more) or topic_pattern")
        if self.topic_pattern is not None:
            if not self.topic_pattern:
                raise ConfigError("topic_pattern", "must not be empty")
            try:
                re.compile(self.topic_pattern)
            except re.error as exc:
                raise ConfigError("topic_pattern", f"is not a regular expression: {exc}") from None
        if not self.group_id:
            raise ConfigError("group_id", "must not be empty")


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    """Passed to every partition's tracker; defaults are the core's (see its docs)."""

    grace_period: float = DEFAULT_GRACE_PERIOD_S
    stream_idle_timeout: float = DEFAULT_IDLE_EVICTION_S
    max_streams: int = DEFAULT_MAX_STREAMS

    def to_tracker_config(self) -> TrackerConfig:
        """The core's :class:`TrackerConfig`; raises :class:`ConfigError` naming our key."""
        try:
            return TrackerConfig(
                grace_period=self.grace_period,
                idle_eviction=self.stream_idle_timeout,
                max_streams=self.max_streams,
            )
        except TrackerConfigError as exc:
            key = {"idle_eviction": "stream_idle_timeout"}.get(exc.field, exc.field)
            raise ConfigError(key, exc.problem) from None

    def validate(self) -> None:
        """Raise :class:`ConfigError` for out-of-range values."""
        self.to_tracker_config()


@dataclass(frozen=True, slots=True)
class CheckpointSettings:
    """Where and how often tracker state is saved."""

    topic: str = "__gapwatch_checkpoints"
    interval: float = 5.0

    def validate(self) -> None:
        """Raise :class:`ConfigError` for out-of-range values."""
        if not self.topic:
            raise ConfigError("checkpoint_topic", "must not be empty")
        if not 0 < self.interval <= 3600:
            raise ConfigError("checkpoint_interval", "must be in (0, 3600] seconds")


@dataclass(frozen=True, slots=True)
class ReportSettings:
    """Producer reports (tail loss, failed sends)."""

    # gapwatch.kafka.topics.REPORT_TOPIC; not imported so that loading the configuration
    # (every ``gapwatch`` command line does) does not load aiokafka.
    topic: str = "__gapwatch_producer_reports"
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """The HTTP API and /metrics endpoint."""

    host: str = "127.0.0.1"
    port: int = 8571
    token: str | None = field(default=None, repr=False)
    # Both set: the API is served over HTTPS (PEM files; the key unencrypted).
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    # "topic": every per-partition metric summed per topic, so the number of series does
    # not grow with the partition count (docs/metrics.md#granularity).
    metrics_granularity: MetricsGranularity = "partition"

    @property
    def scheme(self) -> str:
        """``https`` when TLS is configured, else ``http``."""
        return "https" if self.tls_certfile is not None else "http"

    def validate(self) -> None:
        """Raise :class:`ConfigError` for out-of-range values."""
        if not 0 <= self.port < 65536:
            raise ConfigError("http_port", "must be in 0..65535 (0 picks a free port)")
        if self.token is not None and len(self.token) < 16:
            raise ConfigError("http_token", "must be at least 16 characters")
        if self.tls_certfile is not None and self.tls_keyfile is None:
            raise ConfigError("http_tls_keyfile", "is needed with http_tls_certfile")
        if self.tls_keyfile is not None and self.tls_certfile is None:
            raise ConfigError("http_tls_certfile", "is needed with http_tls_keyfile")
        if self.metrics_granularity not in ("partition", "topic"):
            raise ConfigError("metrics_granularity", "must be partition or topic")


@dataclass(frozen=True, slots=True)
class GapStoreSettings:
    """How long closed (healed, confirmed, truncated, skipped) gaps stay queryable."""

    closed_retention: float = 24 * 3600.0
    closed_limit: int = 10_000

    def validate(self) -> None:
        """Raise :class:`ConfigError` for out-of-range values."""
        if self.closed_retention < 0:
            raise ConfigError("closed_gap_retention", "must be >= 0 seconds")
        if self.closed_limit < 0:
            raise ConfigError("closed_gap_limit", "must be >= 0")


@dataclass(frozen=True, slots=True)
class GapLogSettings:
    """The gap log topic and the fleet view built from it (docs/alerting.md)."""

    topic: str = "__gapwatch_gaps"
    history_retention: float = 7 * 24 * 3600.0
    # Each kept gap costs about 0.65 KB (docs/operations.md, "Memory kept per gap").
    history_limit: int = 50_000
    max_pending: int = 100_000
    flush_timeout: float = 5.0

    def validate(self) -> None:
        """Raise :class:`ConfigError` for out-of-range values."""
        if not self.topic:
            raise ConfigError("gap_log_topic", "must not be empty")
        if self.history_retention <= 0:
            raise ConfigError("gap_history_retention", "must be > 0 seconds")
        if self.history_limit < 1:
            raise ConfigError("gap_history_limit", "must be >= 1")
        if self.max_pending < 1:
            raise ConfigError("gap_log_max_pending", "must be >= 1")
        if self.flush_timeout <= 0:
            raise ConfigError("gap_log_flush_timeout", "must be > 0 seconds")


@dataclass(frozen=True, slots=True)
class EventsSettings:
    """``GET /events`` (Server-Sent Events)."""

    buffer: int = 10_000
    keepalive: float = 15.0

    def validate(self) -> None:
        """Raise :class:`ConfigError` for out-of-range values."""
        if self.buffer < 1:
            raise ConfigError("events_buffer", "must be >= 1")
        if not 0 < self.keepalive <= 300:
            raise ConfigError("events_keepalive", "must be in (0, 300] seconds")


# Kept here rather than imported from the sinks, so that loading the configuration does
# not import the HTTP client.
WEBHOOK_EVENT_KINDS = (
    "opened",
    "shrunk",
    "split",
    "joined",
    "absorbed",
    "told",
    "healed",
    "confirmed",
    "recovered",
    "truncated",
    "unknown",
    "skipped",
    "duplicates",
    "origin",
)
DEFAULT_WEBHOOK_EVENTS = (
    "confirmed",
    "recovered",
    "truncated",
    "skipped",
    "duplicates",
    "origin",
)


def _check_url(key: str, url: str) -> None:
    if not url.startswith(("http://", "https://")) or len(url) < 9:
        raise ConfigError(key, f"{url!r} is not an http:// or https:// URL")


@dataclass(frozen=True, slots=True)
class AlertingSettings:
    """The Alertmanager and webhook sinks (docs/alerting.md)."""

    external_url: str | None = None
    alertmanager_urls: tuple[str, ...] = ()
    repost_interval: float = 60.0
    loss_hold: float = 900.0
    max_per_partition: int = 10
    duplicate_threshold: int = 100
    duplicate_window: float = 60.0
    duplicate_hold: float = 600.0
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_events: tuple[str, ...] = DEFAULT_WEBHOOK_EVENTS
    sink_timeout: float = 5.0
    sink_queue_size: int = 10_000
    sink_max_retries: int = 5
    sink_backoff_initial: float = 0.5
    sink_backoff_max: float = 30.0

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the key of a bad value."""
        if self.external_url is not None:
            _check_url("external_url", self.external_url)
        for url in self.alertmanager_urls:
            _check_url("alertmanager_url", url)
        if self.webhook_url is not None:
            _check_url("webhook_url", self.webhook_url)
        for key, value in (
            ("alert_repost_interval", self.repost_interval),
            ("alert_duplicate_window", self.duplicate_window),
            ("sink_timeout", self.sink_timeout),
            ("sink_backoff_initial", self.sink_backoff_initial),
            ("sink_backoff_max", self.sink_backoff_max),
        ):
            if value <= 0:
                raise ConfigError(key, "must be > 0 seconds")
        for key, value in (
            ("alert_loss_hold", self.loss_hold),
            ("alert_duplicate_hold", self.duplicate_hold),
        ):
            if value < 0:
                raise ConfigError(key, "must be >= 0 seconds")
        for key, count in (
            ("alert_max_per_partition", self.max_per_partition),
            ("alert_duplicate_threshold", self.duplicate_threshold),
            ("sink_queue_size", self.sink_queue_size),
        ):
            if count < 1:
                raise ConfigError(key, "must be >= 1")
        if self.sink_max_retries < 0:
            raise ConfigError("sink_max_retries", "must be >= 0")
        unknown = sorted(set(self.webhook_events) - set(WEBHOOK_EVENT_KINDS))
        if unknown:
            allowed = ", ".join(WEBHOOK_EVENT_KINDS)
            raise ConfigError("webhook_events", f"unknown {unknown}; allowed: {allowed}")
        if self.webhook_secret is not None and len(self.webhook_secret) < 16:
            raise ConfigError("webhook_secret", "must be at least 16 characters")


@dataclass(frozen=True, slots=True)
class DurabilitySettings:
    """The durability audit of the watched topics (docs/operations.md#durability-audit)."""

    # Seconds between reads of the topics' settings and placement; 0 turns the audit off.
    refresh: float = 60.0

    @property
    def is_enabled(self) -> bool:
        """Whether the monitor audits its topics at all."""
        return self.refresh > 0

    def validate(self) -> None:
        """Raise :class:`ConfigError` for out-of-range values."""
        if self.refresh != 0 and not 1 <= self.refresh <= 86_400:
            raise ConfigError("durability_refresh", "must be 0 (off) or in [1, 86400] seconds")


@dataclass(frozen=True, slots=True)
class MirrorSource:
    """One source cluster of mirrored topics: its MM2 alias, servers and security."""

    alias: str
    bootstrap_servers: tuple[str, ...]
    security: SecuritySettings = field(default_factory=SecuritySettings)


@dataclass(frozen=True, slots=True)
class MirrorSettings:
    """Watched topics that are MirrorMaker 2 copies (docs/mirroring.md).

    ``lookup_*`` bound each read of a source partition for one gap; ``lag_interval`` is
    how often the mirror lag of every mirrored partition is measured.
    """

    sources: tuple[MirrorSource, ...] = ()
    replication_policy: ReplicationPolicy = "default"
    lookup_max_records: int = 200_000
    lookup_retries: int = 5
    lookup_concurrency: int = 2
    lag_interval: float = 15.0

    @property
    def aliases(self) -> tuple[str, ...]:
        """The configured source aliases, in order."""
        return tuple(source.alias for source in self.sources)

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the key of a bad value."""
        seen: set[str] = set()
        for source in self.sources:
            if not re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*", source.alias):
                raise ConfigError(
                    "mirror_source", f"alias {source.alias!r} is not an MM2 cluster alias"
                )
            if source.alias in seen:
                raise ConfigError("mirror_source", f"alias {source.alias!r} is given twice")
            seen.add(source.alias)
            try:
                KafkaSettings(
                    bootstrap_servers=source.bootstrap_servers, security=source.security
                ).validate()
            except ConfigError as exc:
                key = "mirror_source" if exc.key == "bootstrap_servers" else "mirror_source_config"
                raise ConfigError(key, f"{source.alias}: {exc.key} {exc.problem}") from None
        if self.replication_policy not in REPLICATION_POLICIES:
            raise ConfigError("replication_policy", "must be default or identity")
        if self.replication_policy == "identity" and len(self.sources) > 1:
            raise ConfigError(
                "replication_policy",
                "identity keeps topic names, so it allows only one mirror_source",
            )
        if self.lookup_max_records < 1:
            raise ConfigError("mirror_lookup_max_records", "must be >= 1")
        if self.lookup_retries < 0:
            raise ConfigError("mirror_lookup_retries", "must be >= 0")
        if self.lookup_concurrency < 1:
            raise ConfigError("mirror_lookup_concurrency", "must be >= 1")
        if not 0 < self.lag_interval <= 3600:
            raise ConfigError("mirror_lag_interval", "must be in (0, 3600] seconds")


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    """Everything ``gapwatch monitor`` needs, validated as a whole by :meth:`validate`."""

    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    watch: WatchSettings = WatchSettings()
    tracker: TrackerSettings = TrackerSettings()
    checkpoints: CheckpointSettings = CheckpointSettings()
    reports: ReportSettings = ReportSettings()
    http: HttpSettings = HttpSettings()
    gap_store: GapStoreSettings = GapStoreSettings()
    gap_log: GapLogSettings = GapLogSettings()
    events: EventsSettings = EventsSettings()
    alerting: AlertingSettings = AlertingSettings()
    durability: DurabilitySettings = DurabilitySettings()
    mirror: MirrorSettings = MirrorSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    canary: CanarySettings = field(default_factory=CanarySettings)

    def validate(self) -> MonitorConfig:
        """Return ``self`` if valid, else raise :class:`ConfigError` naming the key."""
        self.kafka.validate()
        with_canary_watched(self).watch.validate()
        self.tracker.validate()
        self.checkpoints.validate()
        self.http.validate()
        self.gap_store.validate()
        self.gap_log.validate()
        self.events.validate()
        self.alerting.validate()
        self.durability.validate()
        self.mirror.validate()
        if self.gap_log.topic in self.watch.topics:
            raise ConfigError("gap_log_topic", "must not be one of the watched topics")
        if self.checkpoints.topic in self.watch.topics:
            raise ConfigError("checkpoint_topic", "must not be one of the watched topics")
        if self.reports.topic in self.watch.topics:
            raise ConfigError("report_topic", "must not be one of the watched topics")
        if self.canary.enabled:
            self.canary.validate()
            own = (self.gap_log.topic, self.checkpoints.topic, self.reports.topic)
            if self.canary.topic in own:
                raise ConfigError("canary_topic", "must not be one of gapwatch's own topics")
        return self


def with_canary_watched(config: MonitorConfig) -> MonitorConfig:
    """``config`` with the canary topic among the watched topics when the canary is on
    (added to ``topic``, or as an alternative of ``topic_pattern``), so the monitor reads
    it like any topic and its loss is found by the same tracker."""
    canary = config.canary
    watch = config.watch
    if not canary.enabled:
        return config
    if watch.topic_pattern is not None:
        pattern = f"(?:{watch.topic_pattern})|{re.escape(canary.topic)}"
        return replace(config, watch=replace(watch, topic_pattern=pattern))
    if canary.topic in watch.topics:
        return config
    return replace(config, watch=replace(watch, topics=(*watch.topics, canary.topic)))
