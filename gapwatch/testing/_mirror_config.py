"""Pure configuration of the test bed's MirrorMaker 2: its settings, ``mm2.properties``, files.

Nothing here starts a process or touches Kafka; unit tests exercise this module directly.
Every key written to ``mm2.properties`` was checked against MirrorMaker's sources
(``MirrorMakerConfig``, ``MirrorSourceConfig``, ``MirrorCheckpointConfig``,
``MirrorHeartbeatConfig``, Connect's ``DistributedConfig``); ``docs/testing.md`` says why each
is set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: MirrorMaker 2's dedicated mode: the Connect workers and connectors in one JVM, no REST.
MIRROR_MAKER_MAIN = "org.apache.kafka.connect.mirror.MirrorMaker"

#: The alias of the target cluster in ``mm2.properties``. Only the source's alias shows in
#: topic names (``ALIAS.topic``), so the target's is fixed.
TARGET_ALIAS = "target"

#: ``--replication-policy`` choices: how MirrorMaker names a topic on the target.
REPLICATION_POLICIES: Mapping[str, str] = {
    # ALIAS.topic: the default, and what every MM2 estate that mirrors both ways uses.
    "default": "org.apache.kafka.connect.mirror.DefaultReplicationPolicy",
    # The same name on both sides: migrations and one-way disaster recovery.
    "identity": "org.apache.kafka.connect.mirror.IdentityReplicationPolicy",
}

#: ``--offset-reset`` choices: where MirrorMaker's source consumer starts a partition it
#: has no stored offset for, or whose stored offset retention has deleted.
OFFSET_RESETS = ("earliest", "latest")

#: A topic on the source that the test bed writes probe records to, mirrored like the
#: watched topics, so "MirrorMaker is copying" can be checked without touching them.
PROBE_TOPIC = "gapwatch-mirror-probe"

#: JVM heap of MirrorMaker: one source task and two Connect workers' clients need little.
DEFAULT_MIRROR_HEAP = "256m"

#: How often MirrorMaker commits the source offsets it has copied. Short, so a test that
#: stops MirrorMaker abruptly re-copies only a few records; a test that wants duplicates
#: after a SIGKILL sets it long.
DEFAULT_OFFSET_FLUSH_INTERVAL_MS = 1000

#: How often MirrorMaker looks for new source topics matching the pattern (default 600 s).
DEFAULT_REFRESH_TOPICS_INTERVAL_S = 1

_ALIAS_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# Keys the test bed derives from the settings; ``extra`` may not set them, or the settings
# (which the CLI and the state file report) would lie about the running MirrorMaker.
_DERIVED_KEYS = frozenset({"clusters", "replication.policy.class"})


@dataclass(frozen=True, slots=True)
class MirrorSettings:
    """What one MirrorMaker 2 copies, from where to where, and how.

    ``topics`` is a Java regular expression over source topic names (MirrorMaker splits its
    ``topics`` setting on commas, so it may not contain one). ``extra`` are further
    ``mm2.properties`` entries, written last (they win over the test bed's defaults).
    """

    source_bootstrap: str
    target_bootstrap: str
    source_alias: str
    topics: str
    replication_policy: str = "default"
    offset_reset: str = "earliest"
    offset_flush_interval_ms: int = DEFAULT_OFFSET_FLUSH_INTERVAL_MS
    refresh_topics_interval_s: int = DEFAULT_REFRESH_TOPICS_INTERVAL_S
    extra: tuple[tuple[str, str], ...] = field(default=())

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        for name in ("source_bootstrap", "target_bootstrap"):
            value = getattr(self, name)
            if not value or any(c.isspace() for c in value):
                raise ValueError(f"{name}: expected host:port[,host:port...], got {value!r}")
        if self.source_bootstrap == self.target_bootstrap:
            raise ValueError("source_bootstrap and target_bootstrap name the same cluster")
        if not _ALIAS_RE.match(self.source_alias):
            raise ValueError(
                f"source_alias: expected 1-64 letters, digits, '_' or '-', "
                f"got {self.source_alias!r}"
            )
        if self.source_alias == TARGET_ALIAS:
            raise ValueError(f"source_alias: {TARGET_ALIAS!r} is the target's alias")
        if not self.topics.strip() or "," in self.topics or "\n" in self.topics:
            raise ValueError(
                f"topics: expected one regular expression without ',' (MirrorMaker splits "
                f"its topic list on commas), got {self.topics!r}"
            )
        if self.replication_policy not in REPLICATION_POLICIES:
            raise ValueError(
                f"replication_policy: expected one of {sorted(REPLICATION_POLICIES)}, "
                f"got {self.replication_policy!r}"
            )
        if self.offset_reset not in OFFSET_RESETS:
            raise ValueError(
                f"offset_reset: expected one of {list(OFFSET_RESETS)}, got {self.offset_reset!r}"
            )
        if self.offset_flush_interval_ms < 1:
            raise ValueError(
                f"offset_flush_interval_ms: must be positive, got {self.offset_flush_interval_ms}"
            )
        if self.refresh_topics_interval_s < 1:
            raise ValueError(
                f"refresh_topics_interval_s: must be positive, got {self.refresh_topics_interval_s}"
            )
        for key, value in self.extra:
            if key in _DERIVED_KEYS:
                raise ValueError(f"extra: {key!r} is derived from the settings and cannot be set")
            if not key.strip() or "=" in key or "\n" in key or "\n" in value:
                raise ValueError(f"extra: invalid entry {key!r}={value!r}")

    def remote_topic(self, topic: str) -> str:
        """The name MirrorMaker gives source ``topic`` on the target under this policy."""
        if self.replication_policy == "identity":
            return topic
        return f"{self.source_alias}.{topic}"

    @property
    def offsets_topic(self) -> str:
        """The target topic where MirrorMaker keeps the source offsets it has copied.

        Connect's offset store of the ``ALIAS->target`` worker (``MirrorMakerConfig``'s
        default ``offset.storage.topic``); deleting it makes MirrorMaker forget them.
        """
        return f"mm2-offsets.{self.source_alias}.internal"

    @property
    def configs_topic(self) -> str:
        """The target topic where MirrorMaker's Connect worker keeps connector configs."""
        return f"mm2-configs.{self.source_alias}.internal"

    @property
    def flow(self) -> str:
        """``ALIAS->target``: the prefix of the replication flow's own settings."""
        return f"{self.source_alias}->{TARGET_ALIAS}"


def mm2_properties(settings: MirrorSettings) -> dict[str, str]:
    """The full ``mm2.properties`` of ``settings``, in the order it is written."""
    settings.validate()
    alias, flow = settings.source_alias, settings.flow
    props: dict[str, str] = {
        "clusters": f"{alias}, {TARGET_ALIAS}",
        f"{alias}.bootstrap.servers": settings.source_bootstrap,
        f"{TARGET_ALIAS}.bootstrap.servers": settings.target_bootstrap,
        f"{flow}.enabled": "true",
        # The probe topic rides along (MirrorMaker joins the list into one alternation).
        f"{flow}.topics": f"{settings.topics}, {PROBE_TOPIC}",
        "replication.policy.class": REPLICATION_POLICIES[settings.replication_policy],
        # Where a partition without a stored offset starts (MirrorSourceConfig's default is
        # earliest); "ALIAS.consumer." reaches the source consumer as "source.consumer.".
        f"{alias}.consumer.auto.offset.reset": settings.offset_reset,
        # Connect worker settings of the ALIAS->target herder come from the target's
        # "target." prefix (MirrorMakerConfig.workerConfig).
        f"{TARGET_ALIAS}.offset.flush.interval.ms": str(settings.offset_flush_interval_ms),
        "refresh.topics.interval.seconds": str(settings.refresh_topics_interval_s),
        # One-node clusters: every topic MirrorMaker creates gets one replica (the defaults
        # are 2 for mirrored topics and 3 for the internal ones, which a one-node cluster
        # cannot place).
        "replication.factor": "1",
        "offset.storage.replication.factor": "1",
        "config.storage.replication.factor": "1",
        "status.storage.replication.factor": "1",
        "offset-syncs.topic.replication.factor": "1",
        "heartbeats.topic.replication.factor": "1",
        "checkpoints.topic.replication.factor": "1",
        # Connect's defaults are 25 and 5 partitions; one each is plenty for one task.
        "offset.storage.partitions": "1",
        "status.storage.partitions": "1",
        # Heartbeats would also start a reverse target->ALIAS herder (MirrorMakerConfig.
        # clusterPairs) with its own internal topics on the source; checkpoints translate
        # consumer group offsets, which the test bed's scenarios do not use. Both only cost
        # start-up time here. (Offset syncs stay on: MirrorSourceConnector 4.x refuses to
        # start with emit.offset-syncs.enabled=false.)
        "emit.heartbeats.enabled": "false",
        "emit.checkpoints.enabled": "false",
        "refresh.groups.enabled": "false",
        # Find connectors and converters through their ServiceLoader manifests (every
        # plugin in Kafka's jars has one) instead of scanning all 61 jars' classes, which
        # took ~9 s, twice (MirrorMaker's own plugins, then the herder's worker's), here.
        "plugin.discovery": "service_load",
        f"{TARGET_ALIAS}.plugin.discovery": "service_load",
        # The clusters have no authorizer: listing ACLs would only log errors.
        "sync.topic.acls.enabled": "false",
        # A worker killed with SIGKILL leaves its tasks assigned to a dead member; Connect
        # waits this long (default 5 min) before giving them to the restarted worker.
        f"{TARGET_ALIAS}.scheduled.rebalance.max.delay.ms": "0",
        # ...and the dead member stays in the group until its session times out (default
        # 10 s); 6 s is the brokers' group.min.session.timeout.ms.
        f"{TARGET_ALIAS}.session.timeout.ms": "6000",
        f"{TARGET_ALIAS}.heartbeat.interval.ms": "1000",
    }
    props.update(dict(settings.extra))
    return props


def render_mm2_properties(props: Mapping[str, str]) -> str:
    """Java ``.properties`` text of ``props`` (backslashes in values escaped)."""
    lines = ["# Generated by gapwatch.testing.mirror; rewritten on every start."]
    lines.extend(f"{key}={value.replace(chr(92), chr(92) * 2)}" for key, value in props.items())
    return "\n".join(lines) + "\n"


MIRROR_LOG4J2_PROPERTIES = """\
# Generated by gapwatch.testing.mirror: MirrorMaker logs to mm2.log, none to the terminal.
status = warn
name = gapwatch-mirror-maker
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/mm2.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
# Every client MirrorMaker creates logs its full configuration (hundreds of lines each).
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


@dataclass(frozen=True, slots=True)
class MirrorFiles:
    """Where one MirrorMaker keeps its files: all of them directly in its state directory."""

    state_dir: Path

    @property
    def config_path(self) -> Path:
        """``mm2.properties``, the one argument of MirrorMaker's main class."""
        return self.state_dir / "mm2.properties"

    @property
    def log4j_path(self) -> Path:
        """The generated log4j2 configuration."""
        return self.state_dir / "log4j2.properties"

    @property
    def logs_dir(self) -> Path:
        """Where log4j2 writes ``mm2.log``."""
        return self.state_dir / "logs"

    @property
    def server_log_path(self) -> Path:
        """MirrorMaker's log: herders, connectors, tasks, its clients."""
        return self.logs_dir / "mm2.log"

    @property
    def stdout_path(self) -> Path:
        """The JVM's own stdout/stderr (crashes, log4j status messages)."""
        return self.state_dir / "stdout.log"
