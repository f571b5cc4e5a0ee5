"""Pure configuration of the test bed: versions, node layout, ``server.properties``, JVM flags.

Nothing here starts a process or touches Kafka; :func:`allocate_ports` is the only function
that opens (and at once closes) loopback sockets. Unit tests exercise this module directly.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

#: The one place the default Kafka version is pinned; ``GAPWATCH_KAFKA_VERSION`` overrides it.
DEFAULT_KAFKA_VERSION = "4.3.1"

#: A release of 3.9, the last minor line of 3.x, which many production clusters still run.
#: Issue #12 names 3.9.1; 3.9.2 is also on Maven Central and passes the same matrix test.
KAFKA_3X_VERSION = "3.9.1"

#: The newest release on Maven Central (checked 2026-12-05), so a change in Kafka shows up
#: before the default moves to it.
NEWEST_KAFKA_VERSION = "4.4.0"

#: The versions gapwatch is proven on (``tests/integration/test_version_matrix.py``), oldest
#: first; ``make kafka-jars`` (``fetch --matrix``) caches every one of them.
TESTED_KAFKA_VERSIONS = (KAFKA_3X_VERSION, DEFAULT_KAFKA_VERSION, NEWEST_KAFKA_VERSION)

#: log4j2 version of the SLF4J-1.x binding we add. Kafka 4.3.1 itself depends on
#: log4j-api/log4j-core 2.25.4 and slf4j-api 1.7.36 (checked with ``mvn dependency:tree``), so
#: the binding, core and api are all pinned to the same release to keep them consistent.
#: 3.9.1 and 4.4.0 use the same slf4j-api 1.7.36, so one binding serves the whole matrix.
LOG4J_VERSION = "2.25.4"

VERSION_ENV = "GAPWATCH_KAFKA_VERSION"
CACHE_ENV = "GAPWATCH_KAFKA_CACHE"
JVM_OPTS_ENV = "GAPWATCH_KAFKA_JVM_OPTS"

HOST = "127.0.0.1"

#: Default JVM heap per node. Three nodes must fit on a 2-core machine next to the tests.
DEFAULT_HEAP = "512m"

# Timing settings the fault tests depend on. Kafka's defaults are tuned for real networks;
# on loopback they only make failure detection slow, so each is set explicitly here.
TIMING_DEFAULTS: Mapping[str, str] = {
    # A broker that misses heartbeats this long is fenced: its partitions get new leaders.
    # Kafka's default is 9 s; 3 s keeps failover tests short while still tolerating a GC
    # pause or a busy 2-core CI machine (6 missed heartbeats before fencing).
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "500",
    # A follower that has not caught up for this long leaves the ISR (default 30 s).
    "replica.lag.time.max.ms": "5000",
    # Consumer groups start their first rebalance at once instead of waiting 3 s.
    "group.initial.rebalance.delay.ms": "0",
    # KRaft quorum timings, set to Kafka's defaults but pinned so that a killed active
    # controller is replaced within about 2-3 s regardless of future default changes.
    "controller.quorum.election.timeout.ms": "1000",
    "controller.quorum.fetch.timeout.ms": "2000",
    # Internal topics default to 50 partitions each; creating 50 partitions (x3 replicas)
    # the first time a group or transaction appears costs seconds on a small machine.
    "offsets.topic.num.partitions": "4",
    "transaction.state.log.num.partitions": "4",
    "share.coordinator.state.topic.num.partitions": "4",
    # Leadership should change only because a test injected a fault, not because the
    # periodic preferred-leader election (every 5 min by default) moved it back.
    "auto.leader.rebalance.enable": "false",
    # Tests create their topics explicitly (create_topic / make_topic); a typo'd topic
    # name then fails loudly instead of silently creating a 1-replica topic.
    "auto.create.topics.enable": "false",
}

# Fewer threads than Kafka's defaults (8 I/O, 3 network): plenty for tests, and three JVMs
# on two cores spend less time context switching.
RESOURCE_DEFAULTS: Mapping[str, str] = {
    "num.io.threads": "2",
    "num.network.threads": "2",
    "num.replica.fetchers": "1",
    "background.threads": "2",
}

# Keys the test bed owns; overriding them would break the layout it relies on.
RESERVED_KEYS = frozenset(
    {
        "process.roles",
        "node.id",
        "controller.quorum.voters",
        "controller.quorum.bootstrap.servers",
        "listeners",
        "advertised.listeners",
        "controller.listener.names",
        "listener.security.protocol.map",
        "inter.broker.listener.name",
        "log.dirs",
        "log.dir",
        "metadata.log.dir",
    }
)

# Share groups (KIP-932) arrived in Kafka 4.0. Kafka 3.x silently ignores keys it does not
# know, but the generated file should hold only settings the running version reads.
_SINCE_4_0_PREFIXES = ("share.coordinator.",)

_VERSION_RE = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+(-[A-Za-z0-9.]+)?$")

ConfigValue = str | int | bool


class JvmFiles(Protocol):
    """Where one test-bed JVM keeps its files: a broker's :class:`NodeSpec`, or MirrorMaker's
    files (:mod:`._mirror_config`)."""

    @property
    def logs_dir(self) -> Path:
        """Where log4j2 writes the main log (``-Dkafka.logs.dir``)."""

    @property
    def config_path(self) -> Path:
        """The properties file on the command line (also how the process is recognised)."""

    @property
    def log4j_path(self) -> Path:
        """The generated log4j2 configuration."""

    @property
    def stdout_path(self) -> Path:
        """The JVM's own stdout/stderr."""

    @property
    def server_log_path(self) -> Path:
        """The main log file."""


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """Where one combined broker+controller node listens and keeps its files."""

    node_id: int
    port: int
    controller_port: int
    node_dir: Path

    @property
    def bootstrap(self) -> str:
        """``host:port`` of this node's client listener."""
        return f"{HOST}:{self.port}"

    @property
    def data_dir(self) -> Path:
        """Kafka's ``log.dirs``: partitions and the KRaft metadata log."""
        return self.node_dir / "data"

    @property
    def logs_dir(self) -> Path:
        """Where log4j2 writes ``server.log`` (``-Dkafka.logs.dir``)."""
        return self.node_dir / "logs"

    @property
    def config_path(self) -> Path:
        """The node's generated ``server.properties``."""
        return self.node_dir / "server.properties"

    @property
    def log4j_path(self) -> Path:
        """The node's generated log4j2 configuration."""
        return self.node_dir / "log4j2.properties"

    @property
    def stdout_path(self) -> Path:
        """The JVM's own stdout/stderr (crashes, log4j status messages), never the terminal."""
        return self.node_dir / "stdout.log"

    @property
    def server_log_path(self) -> Path:
        """The broker's main log file."""
        return self.logs_dir / "server.log"


def resolve_version(version: str | None = None) -> str:
    """The Kafka version to use: the argument, else ``$GAPWATCH_KAFKA_VERSION``, else pinned."""
    chosen = version or os.environ.get(VERSION_ENV) or DEFAULT_KAFKA_VERSION
    if not _VERSION_RE.match(chosen):
        raise ValueError(f"Kafka version {chosen!r} does not look like 4.3.1")
    return chosen


def release_of(version: str) -> tuple[int, int, int]:
    """``(major, minor, patch)`` of a version such as ``3.9.1`` or ``4.4.0-rc1``."""
    if not _VERSION_RE.match(version):
        raise ValueError(f"Kafka version {version!r} does not look like 4.3.1")
    major, minor, patch = version.split("-", 1)[0].split(".")
    return int(major), int(minor), int(patch)


def known_to(version: str, defaults: Mapping[str, str]) -> dict[str, str]:
    """The entries of the test bed's ``defaults`` that Kafka ``version`` has settings for."""
    if release_of(version) >= (4, 0, 0):
        return dict(defaults)
    return {k: v for k, v in defaults.items() if not k.startswith(_SINCE_4_0_PREFIXES)}


def cache_root() -> Path:
    """Root of the jar cache: ``$GAPWATCH_KAFKA_CACHE`` or ``~/.cache/gapwatch/kafka``."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "gapwatch" / "kafka"


def new_cluster_id() -> str:
    """A random KRaft cluster id, as ``kafka-storage random-uuid`` would print.

    Kafka ids are a UUID's 16 bytes in URL-safe base64 without padding. Like Kafka's own
    ``Uuid.randomUuid`` we never return one starting with ``-``, which command lines would
    mistake for an option. Generating it here saves starting a JVM just for this.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not text.startswith("-"):
            return text


def allocate_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1.

    All sockets stay bound until every port is chosen, so the ports are distinct; another
    process can still grab one before Kafka binds it, which the cluster handles by retrying.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def plan_nodes(state_dir: Path, count: int, ports: Sequence[int] | None = None) -> list[NodeSpec]:
    """Node ids 1..count, each with a client and a controller port and its own directory."""
    if count < 1:
        raise ValueError(f"nodes must be at least 1, got {count}")
    chosen = list(ports) if ports is not None else allocate_ports(2 * count)
    if len(chosen) != 2 * count:
        raise ValueError(f"need {2 * count} ports for {count} nodes, got {len(chosen)}")
    return [
        NodeSpec(
            node_id=index + 1,
            port=chosen[2 * index],
            controller_port=chosen[2 * index + 1],
            node_dir=state_dir / f"node-{index + 1}",
        )
        for index in range(count)
    ]


def replication_defaults(node_count: int) -> dict[str, str]:
    """Internal topics' replication: 3 (min ISR 2) on a 3+ node cluster, else all nodes.

    With three replicas and min ISR 2, killing any one node leaves consumer offsets,
    transactions and share-group state writable.
    """
    factor = min(node_count, 3)
    min_isr = 2 if factor >= 3 else 1
    return {
        "offsets.topic.replication.factor": str(factor),
        "transaction.state.log.replication.factor": str(factor),
        "transaction.state.log.min.isr": str(min_isr),
        "share.coordinator.state.topic.replication.factor": str(factor),
        "share.coordinator.state.topic.min.isr": str(min_isr),
        "default.replication.factor": str(factor),
    }


def _render_value(value: ConfigValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_overrides(overrides: Mapping[str, ConfigValue], *, where: str) -> dict[str, str]:
    """Validate user overrides; raise ``ValueError`` naming the bad key."""
    checked: dict[str, str] = {}
    for key, value in overrides.items():
        if key in RESERVED_KEYS:
            raise ValueError(f"{where}: {key!r} is managed by the test bed and cannot be set")
        text = _render_value(value)
        if "\n" in key or "\n" in text or "=" in key or not key.strip():
            raise ValueError(f"{where}: invalid config entry {key!r}={text!r}")
        checked[key] = text
    return checked


def server_properties(
    node: NodeSpec,
    voters: Sequence[NodeSpec],
    *,
    version: str = DEFAULT_KAFKA_VERSION,
    broker_overrides: Mapping[str, ConfigValue] | None = None,
    node_overrides: Mapping[str, ConfigValue] | None = None,
    security: Mapping[str, str] | None = None,
    listener: str = "PLAINTEXT",
) -> dict[str, str]:
    """The full broker configuration of ``node`` running Kafka ``version``, in precedence
    order.

    Later layers win: layout < ``security`` (from :mod:`._security`) < timing defaults
    < resource defaults < replication defaults < ``broker_overrides`` (all nodes)
    < ``node_overrides`` (this node only). Defaults the version has no setting for are left
    out; overrides are always written as given. ``listener`` names the client listener and
    its protocol (``SASL_SSL``...), which is also the inter-broker listener.
    """
    quorum = ",".join(f"{v.node_id}@{HOST}:{v.controller_port}" for v in voters)
    props: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        # Static voters: every node is formatted with the same -t and needs no
        # --standalone/--initial-controllers flags, which Kafka 3.9 introduced with dynamic
        # quorums; so the same layout and format command serve 3.x and 4.x alike.
        "controller.quorum.voters": quorum,
        "listeners": f"{listener}://{HOST}:{node.port},CONTROLLER://{HOST}:{node.controller_port}",
        "advertised.listeners": f"{listener}://{HOST}:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,{listener}:{listener}",
        "inter.broker.listener.name": listener,
        "log.dirs": str(node.data_dir),
    }
    props.update(security or {})
    props.update(known_to(version, TIMING_DEFAULTS))
    props.update(RESOURCE_DEFAULTS)
    props.update(known_to(version, replication_defaults(len(voters))))
    props.update(check_overrides(broker_overrides or {}, where="broker_overrides"))
    props.update(check_overrides(node_overrides or {}, where=f"node_overrides[{node.node_id}]"))
    return props


def render_properties(props: Mapping[str, str]) -> str:
    """Java ``.properties`` text; backslashes are the only character values need escaped."""
    lines = ["# Generated by gapwatch.testing.kafka; edits are overwritten on start."]
    lines.extend(f"{key}={value.replace(chr(92), chr(92) * 2)}" for key, value in props.items())
    return "\n".join(lines) + "\n"


def parse_properties(text: str) -> dict[str, str]:
    """Inverse of :func:`render_properties` for the files this module writes."""
    props: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.partition("=")
        props[key.strip()] = value.replace(chr(92) * 2, chr(92))
    return props


LOG4J2_PROPERTIES = """\
# Generated by gapwatch.testing.kafka: all broker logging goes to a file, none to the terminal.
status = warn
name = gapwatch-kafka
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
# Request logging at INFO would dominate the file without helping diagnose a test.
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def jvm_command(
    *,
    java: str,
    jars_dir: Path,
    node: JvmFiles,
    state_dir: Path,
    heap: str,
    main_class: str,
    args: Sequence[str],
    is_tool: bool = False,
    extra_jvm_args: Sequence[str] = (),
) -> list[str]:
    """The ``java`` command line for one Kafka process of ``node`` (a broker's or a tool's,
    or MirrorMaker's).

    ``-Dgapwatch.state.dir`` tags the process so it can be recognised (and only it killed)
    from its command line, e.g. ``pkill -f <state dir>``. ``extra_jvm_args`` come last so
    they win (``$GAPWATCH_KAFKA_JVM_OPTS``).
    """
    # -XX:TieredStopAtLevel=1 (the C1 JIT only): C2 compiling Kafka's startup path competes
    # for the CPU with the other nodes; measured on 2 cores, a 3-node cluster is ready in
    # ~7 s instead of ~12 s. Steady-state throughput is lower, which tests do not need;
    # benchmarks can append -XX:TieredStopAtLevel=4 via $GAPWATCH_KAFKA_JVM_OPTS.
    if is_tool:
        # StorageTool: the serial collector starts fastest (1.1 s vs 1.8 s with G1 and C2).
        tuning = ["-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
    else:
        tuning = [
            f"-Xmx{heap}",
            "-Xms64m",
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
        ]
    return [
        java,
        *tuning,
        # Fail fast instead of limping on with a heap that is too small.
        "-XX:+ExitOnOutOfMemoryError",
        # No /tmp/hsperfdata_* files left behind by killed JVMs.
        "-XX:-UsePerfData",
        "-Djava.awt.headless=true",
        f"-Dgapwatch.state.dir={state_dir}",
        f"-Dlog4j2.configurationFile={node.log4j_path}",
        f"-Dkafka.logs.dir={node.logs_dir}",
        *extra_jvm_args,
        "-cp",
        f"{jars_dir}/*",
        main_class,
        *args,
    ]
