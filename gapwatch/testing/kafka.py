"""A throwaway, real Apache Kafka cluster (KRaft) on 127.0.0.1, for tests.

Python use::

    with KafkaCluster(nodes=3) as cluster:
        await cluster.create_topic("t", partitions=1, replication_factor=3)
        state = await cluster.describe_partition("t", 0)
        cluster.kill_node(state.leader)             # returns as soon as SIGKILL is sent
        await cluster.wait_for_leader("t", 0, exclude=[state.leader])

Command line (``python -m gapwatch.testing.kafka --help``): ``fetch``, ``up``, ``down``,
``status`` and the per-node faults ``stop|kill|pause|resume|restart``. See ``docs/testing.md``.

Every node is a combined broker+controller with static voters, its own directory under the
state dir, and a log file; node ids are 1..N. Jars come from :mod:`._maven`'s cache.
``security=SecurityPlan(...)`` (CLI: ``up --security ...``) secures the client listener with
TLS, mutual TLS or SASL and can turn on the authorizer (:mod:`._security`).
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import gc
import os
import secrets
import shutil
import signal
import sys
import tempfile
import warnings
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from gapwatch.testing import _readiness
from gapwatch.testing._admin import PartitionState, topic_partitions
from gapwatch.testing._cli import build_parser
from gapwatch.testing._client import (
    CLIENT_JSON,
    CLIENT_PROPERTIES,
    ClientConfig,
    UnsecuredTokenProvider,
)
from gapwatch.testing._cluster_admin import ClusterAdmin
from gapwatch.testing._config import (
    DEFAULT_HEAP,
    DEFAULT_KAFKA_VERSION,
    JVM_OPTS_ENV,
    TESTED_KAFKA_VERSIONS,
    ConfigValue,
    new_cluster_id,
    plan_nodes,
    resolve_version,
)
from gapwatch.testing._errors import (
    ClusterStateError,
    KafkaFetchError,
    KafkaTestbedError,
    NodeStartError,
    ToolMissingError,
    TopicError,
)
from gapwatch.testing._launcher import Launcher
from gapwatch.testing._maven import FetchResult, fetch_kafka
from gapwatch.testing._node import NodeProcess, find_java, port_accepts
from gapwatch.testing._security import (
    ADMIN_USER,
    MECHANISMS,
    MODES,
    SecurityPlan,
    User,
    plan_from_arguments,
    unsecured_jwt,
)
from gapwatch.testing._state import (
    STATE_FILE,
    ClusterRecord,
    adopt_nodes,
    node_records,
    read_state,
    write_state,
)

__all__ = [
    "ADMIN_USER",
    "CLIENT_JSON",
    "CLIENT_PROPERTIES",
    "DEFAULT_KAFKA_VERSION",
    "JVM_OPTS_ENV",
    "MECHANISMS",
    "MODES",
    "TESTED_KAFKA_VERSIONS",
    "ClientConfig",
    "ClusterStateError",
    "FetchResult",
    "KafkaCluster",
    "KafkaFetchError",
    "KafkaTestbedError",
    "NodeStartError",
    "PartitionState",
    "SecurityPlan",
    "ToolMissingError",
    "TopicError",
    "UnsecuredTokenProvider",
    "User",
    "fetch_kafka",
    "topic_partitions",
    "unsecured_jwt",
]

_START_ATTEMPTS = 3  # a free port can be taken by someone else before Kafka binds it


class KafkaCluster(ClusterAdmin):
    """N combined broker+controller Kafka nodes on 127.0.0.1, with fault controls and the
    async admin helpers of :class:`~gapwatch.testing._cluster_admin.ClusterAdmin`.

    ``broker_overrides`` apply to every node, ``node_overrides[node_id]`` to one node; both
    override the timing defaults (see ``docs/testing.md``). With ``state_dir=None`` a temporary
    directory is used and deleted by :meth:`stop`. ``detach=True`` (used by the CLI's ``up``)
    leaves the JVMs running when this process exits; otherwise they never outlive it.

    ``security`` secures the client listener (TLS, mutual TLS, SASL, the authorizer; see
    :class:`SecurityPlan`); the admin's settings are then in :attr:`client_json_path`, and
    the test bed's own admin requests use them too.
    """

    def __init__(
        self,
        nodes: int = 1,
        state_dir: str | os.PathLike[str] | None = None,
        version: str | None = None,
        broker_overrides: Mapping[str, ConfigValue] | None = None,
        node_overrides: Mapping[int, Mapping[str, ConfigValue]] | None = None,
        *,
        heap: str = DEFAULT_HEAP,
        start_timeout: float = 120.0,
        detach: bool = False,
        security: SecurityPlan | None = None,
    ) -> None:
        if nodes < 1:
            raise ValueError(f"nodes must be at least 1, got {nodes}")
        unknown = set(node_overrides or {}) - set(range(1, nodes + 1))
        if unknown:
            raise ValueError(f"node_overrides names unknown node ids {sorted(unknown)}")
        self.version = resolve_version(version)
        self.heap = heap
        self.start_timeout = start_timeout
        self.is_detached = detach
        plan = security or SecurityPlan()
        if not plan.admin_password:
            plan = dataclasses.replace(plan, admin_password=secrets.token_urlsafe(18))
        self.security = plan
        self._node_count = nodes
        self._broker_overrides = dict(broker_overrides or {})
        self._node_overrides = {k: dict(v) for k, v in (node_overrides or {}).items()}
        self._owns_state_dir = state_dir is None
        self._state_dir = Path(state_dir).resolve() if state_dir is not None else None
        self._nodes: dict[int, NodeProcess] = {}
        self._java = ""
        self._jars_dir = Path()
        # A fault was injected (or a node restarted) since the cluster was last seen whole:
        # heal() must ask Kafka, because a node can look fine as a process and not be back.
        self._is_faulted = False

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Fetch jars if needed, format storage, start every node, wait for all brokers."""
        if self._nodes:
            raise ClusterStateError("cluster is already started")
        self._java = find_java()
        self._jars_dir = fetch_kafka(self.version).jars_dir
        if self._state_dir is None:
            self._state_dir = Path(tempfile.mkdtemp(prefix="gapwatch-kafka-")).resolve()
        self._state_dir.mkdir(parents=True, exist_ok=True)
        _refuse_if_running(self._state_dir)
        if not self.is_detached:
            atexit.register(self.stop)
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                self._start_once()
                return self
            except NodeStartError as exc:
                if attempt < _START_ATTEMPTS and "Address already in use" in str(exc):
                    self._kill_all()
                    continue
                self.stop()
                raise
            except BaseException:
                # Includes KeyboardInterrupt: never leave half-started JVMs behind.
                self.stop()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _start_once(self) -> None:
        specs = plan_nodes(self.state_dir, self._node_count)
        launcher = self._launcher()
        launcher.write_node_files(specs, self._broker_overrides, self._node_overrides)
        launcher.format_storage(specs, new_cluster_id(), timeout=self.start_timeout)
        self._nodes = {spec.node_id: NodeProcess(spec) for spec in specs}
        for node in self._nodes.values():
            self._launch(node)
        self._save_state()
        self.client_config().write(self.state_dir)
        self.wait_for_brokers(timeout_s=self.start_timeout)
        if self.security.mode != "plaintext":
            _close_dropped_sockets()

    def _launcher(self) -> Launcher:
        return Launcher(
            self._java, self._jars_dir, self.state_dir, self.heap, self.version, self.security
        )

    def _launch(self, node: NodeProcess) -> None:
        node.launch(self._launcher().broker_command(node.spec), detach=self.is_detached)

    def stop(self) -> None:
        """Kill every node (SIGKILL: the data is throwaway) and wait until they are gone.

        Idempotent. Deletes the state directory if this object created it.
        """
        atexit.unregister(self.stop)
        self._kill_all()
        if self._state_dir is None:
            return
        if self._owns_state_dir:
            shutil.rmtree(self._state_dir, ignore_errors=True)
            self._state_dir = None  # a later start() gets a fresh temporary directory
        elif self._nodes:
            # Keep the file (all nodes now down) so 'status' and a second 'down' still work.
            self._save_state()
        self._nodes = {}

    def _kill_all(self) -> None:
        for node in self._nodes.values():
            node.signal(signal.SIGKILL)  # all at once, then reap: faster than one by one
        for node in self._nodes.values():
            node.kill_and_reap()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        """Directory holding each node's config, data and logs (``node-<id>/``)."""
        if self._state_dir is None:
            raise ClusterStateError("cluster has not been started")
        return self._state_dir

    @property
    def node_ids(self) -> list[int]:
        """Kafka ``node.id`` of every node (also its broker id in metadata): 1..N."""
        return list(range(1, self._node_count + 1))

    @property
    def bootstrap_servers(self) -> str:
        """Comma-separated ``host:port`` of every node's client listener."""
        return ",".join(self._node(i).spec.bootstrap for i in self.node_ids)

    def node_bootstrap(self, node_id: int) -> str:
        """``host:port`` of one node's client listener."""
        return self._node(node_id).spec.bootstrap

    @property
    def client_json_path(self) -> Path:
        """``client.json``: the admin's settings under gapwatch's own configuration keys."""
        return self.state_dir / CLIENT_JSON

    @property
    def client_properties_path(self) -> Path:
        """``client.properties``: the admin's settings for librdkafka (``kcat -F``)."""
        return self.state_dir / CLIENT_PROPERTIES

    def client_config(self, user: str = ADMIN_USER) -> ClientConfig:
        """How ``user`` (the admin or one of ``security.users``) connects to this cluster."""
        for identity in self.security.identities:
            if identity.name == user:
                return ClientConfig.for_user(
                    self.security,
                    identity,
                    bootstrap_servers=self.bootstrap_servers,
                    tls=self._launcher().tls_files,
                )
        raise ValueError(f"cluster has no user {user!r}")

    def _admin_options(self) -> dict[str, Any]:
        return self.client_config().aiokafka_options()

    def log_path(self, node_id: int) -> Path:
        """The node's ``server.log``."""
        return self._node(node_id).spec.server_log_path

    def is_node_running(self, node_id: int) -> bool:
        """Whether the node's JVM is alive (paused counts as alive)."""
        return self._node(node_id).is_running()

    def wait_node_exit(self, node_id: int, timeout_s: float = 30.0) -> bool:
        """Block until the node's JVM has exited (e.g. after :meth:`stop_node`); ``False`` on
        timeout. Fault controls never wait by themselves; this is the explicit way to."""
        return self._node(node_id).wait_exit(timeout_s)

    def node_exit_code(self, node_id: int) -> int | None:
        """Exit status of a node this process started, once its JVM has exited, else ``None``."""
        return self._node(node_id).exit_code()

    def is_node_paused(self, node_id: int) -> bool:
        """Whether the node was paused with :meth:`pause_node` and not resumed since."""
        return self._node(node_id).is_paused

    def _node(self, node_id: int) -> NodeProcess:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise ClusterStateError(f"no running cluster has node {node_id}") from None

    def _reachable_bootstrap(self) -> str:
        # Paused nodes accept TCP connections but never answer, so keep them out.
        live = [
            n.spec.bootstrap for n in self._nodes.values() if n.is_running() and not n.is_paused
        ]
        return ",".join(live) or self.bootstrap_servers

    # -- faults: each returns as soon as the signal is sent ------------------------------

    def stop_node(self, node_id: int) -> bool:
        """SIGTERM: graceful (controlled) shutdown. ``False`` if the node was not running."""
        return self._send(node_id, signal.SIGTERM)

    def kill_node(self, node_id: int) -> bool:
        """SIGKILL: the node dies at once, as in a crash or power loss."""
        return self._send(node_id, signal.SIGKILL)

    def pause_node(self, node_id: int) -> bool:
        """SIGSTOP: the JVM freezes (a GC pause or a hung host), its sockets stay open."""
        return self._send(node_id, signal.SIGSTOP)

    def resume_node(self, node_id: int) -> bool:
        """SIGCONT: a paused node carries on where it stopped."""
        return self._send(node_id, signal.SIGCONT)

    def _send(self, node_id: int, sig: signal.Signals) -> bool:
        self._is_faulted = True
        sent = self._node(node_id).signal(sig)
        self._save_state()
        return sent

    def restart_node(self, node_id: int, wait: bool = True, timeout_s: float = 60.0) -> None:
        """Stop the node if it runs (SIGTERM, SIGKILL after 10 s), start it with the same
        config and data, and, if ``wait``, wait until metadata lists it as a broker again."""
        node = self._node(node_id)
        self._is_faulted = True
        node.terminate(timeout=10.0)
        self._launch(node)
        self._save_state()
        if wait:
            self.wait_for_brokers([node_id], timeout_s=timeout_s)

    def heal(self, timeout_s: float = 60.0) -> None:
        """Undo every fault: resume paused nodes, finish stopping nodes that got SIGTERM,
        start dead ones, then wait until every node serves clients again and lists every
        broker as registered and unfenced.

        Returns at once, without asking Kafka anything, if no fault control was used since
        the cluster was last seen whole and every node is running and listening: the pytest
        plugin calls this before every test that uses a cluster fixture.
        """
        nodes = self._nodes.values()
        if not self._is_faulted and all(
            n.is_healthy() and port_accepts(n.spec.port) for n in nodes
        ):
            return
        for node in nodes:
            if node.is_stopping and node.is_running():
                node.terminate(timeout=30.0)  # let the controlled shutdown finish
            elif node.is_paused:
                node.signal(signal.SIGCONT)
            if not node.is_running():
                self._launch(node)
        self._save_state()
        # Even when every process looks fine: a node restarted by a test may still be
        # recovering, and one killed by it may still be listed by the others (see
        # wait_for_brokers), so only Kafka can say the cluster is whole.
        self.wait_for_brokers(timeout_s=timeout_s)
        self._is_faulted = False

    def wait_for_brokers(
        self, node_ids: Collection[int] | None = None, timeout_s: float = 60.0
    ) -> None:
        """Block until every node in ``node_ids`` (default: all) answers clients on its own
        listener and each of them lists every one of ``node_ids`` as a registered, unfenced
        broker. Each node is asked directly (:mod:`._readiness` says why).

        Raises :class:`NodeStartError` with the node's log tail if one exits meanwhile.
        """
        wanted = set(self.node_ids if node_ids is None else node_ids)
        _readiness.wait_for_brokers(
            {i: self._node(i) for i in wanted}, timeout_s, options=self._admin_options()
        )

    # -- state file: lets the CLI act on a cluster started by another process ----------

    def _save_state(self) -> None:
        nodes = node_records(self._nodes.values())
        record = ClusterRecord(
            self.version,
            self._java,
            str(self._jars_dir),
            self.heap,
            nodes,
            self.security.to_record(),
        )
        write_state(self.state_dir, record)

    @classmethod
    def attach(cls, state_dir: str | os.PathLike[str]) -> KafkaCluster:
        """A handle on a cluster another process started (e.g. ``up``), from its state file."""
        root = Path(state_dir).resolve()
        record = read_state(root)
        try:
            security = SecurityPlan.from_record(record.security)
        except ValueError as exc:
            raise ClusterStateError(f"unreadable security settings in {root}: {exc}") from None
        cluster = cls(
            len(record.nodes),
            root,
            record.version,
            heap=record.heap,
            detach=True,
            security=security,
        )
        cluster._java = record.java
        cluster._jars_dir = Path(record.jars_dir)
        cluster._nodes = adopt_nodes(root, record)
        return cluster


def _refuse_if_running(state_dir: Path) -> None:
    """Raise if ``state_dir`` holds a cluster that still has live nodes."""
    if not (state_dir / STATE_FILE).exists():
        return
    try:
        other = KafkaCluster.attach(state_dir)
    except ClusterStateError:
        return  # unreadable leftovers: treat as stale and start afresh
    alive = [i for i in other.node_ids if other.is_node_running(i)]
    if alive:
        raise ClusterStateError(
            f"{state_dir} already has running Kafka nodes {alive}; run 'down' first"
        )


# --- the command line (``python -m gapwatch.testing.kafka``) -------------------------------
#
# ``up`` starts detached JVMs and records their PIDs in ``<state dir>/cluster.json``; every
# other command re-attaches to the cluster through that file, so they can run from any
# shell. The bootstrap servers are always the last line ``up`` prints to stdout, for scripts.


def _up(args: argparse.Namespace) -> int:
    node_overrides: dict[int, dict[str, ConfigValue]] = {}
    for node_id, key, value in args.node_settings:
        node_overrides.setdefault(node_id, {})[key] = value
    extra = {"heap": args.heap} if args.heap else {}
    security = plan_from_arguments(
        args.security, args.sasl_mechanism, args.users, has_authorizer=args.authorizer
    )
    cluster = KafkaCluster(
        nodes=args.nodes,
        state_dir=args.state_dir,
        version=args.kafka_version,
        broker_overrides=dict(args.settings),
        node_overrides=node_overrides,
        detach=True,
        security=security,
        **extra,
    )
    cluster.start()
    for node_id in cluster.node_ids:
        print(
            f"node {node_id}: {cluster.node_bootstrap(node_id)}  log: {cluster.log_path(node_id)}"
        )
    print(
        f"security: {security.protocol}"
        + (f" {security.sasl_mechanism}" if security.uses_sasl else "")
        + (", authorizer on" if security.has_authorizer else "")
        + f"; admin client settings: {cluster.client_json_path}, {cluster.client_properties_path}"
    )
    print(cluster.bootstrap_servers, flush=True)
    return 0


def _fetch(args: argparse.Namespace) -> int:
    versions = [resolve_version(args.kafka_version)]
    if args.matrix:
        # The resolved default first: $GAPWATCH_KAFKA_VERSION may name one outside the matrix.
        versions += [v for v in TESTED_KAFKA_VERSIONS if v not in versions]
    for version in versions:
        result = fetch_kafka(version)
        verb = "downloaded" if result.downloaded else "cached"
        print(f"Kafka {version} jars {verb} in {result.jars_dir} ({result.seconds:.1f} s)")
    return 0


def _status(args: argparse.Namespace) -> int:
    cluster = KafkaCluster.attach(args.state_dir)
    for node_id in cluster.node_ids:
        if cluster.is_node_paused(node_id):
            state = "paused"
        else:
            state = "running" if cluster.is_node_running(node_id) else "down"
        print(f"node {node_id}: {cluster.node_bootstrap(node_id)} {state}")
    print(cluster.bootstrap_servers)
    return 0


def _fault(args: argparse.Namespace) -> int:
    cluster = KafkaCluster.attach(args.state_dir)
    if args.command == "restart":
        cluster.restart_node(args.node, wait=not args.no_wait)
        return 0
    action = {
        "stop": cluster.stop_node,
        "kill": cluster.kill_node,
        "pause": cluster.pause_node,
        "resume": cluster.resume_node,
    }[args.command]
    if not action(args.node):
        print(f"node {args.node} is not running", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (1 with a one-paragraph message on test-bed errors)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "fetch":
            return _fetch(args)
        if args.command == "up":
            return _up(args)
        if args.command == "down":
            KafkaCluster.attach(args.state_dir).stop()
            return 0
        if args.command == "status":
            return _status(args)
        return _fault(args)
    except (KafkaTestbedError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _close_dropped_sockets() -> None:
    """Close now, quietly, the sockets aiokafka 0.14 dropped while the brokers came up.

    Its TLS connections refused while a fresh secured cluster is still starting are dropped
    without being closed; the garbage collector closes them later with a ResourceWarning,
    in whatever test happens to run then (and pytest turns warnings into errors). They are
    the test bed's own readiness checks' connections, so the test bed collects them.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


if __name__ == "__main__":
    raise SystemExit(main())
