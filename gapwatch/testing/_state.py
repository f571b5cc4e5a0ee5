"""The state file ``<state dir>/cluster.json``: what the CLI needs to find a running cluster.

``up`` exits while its JVMs keep running, so every later command (``down``, ``kill`` ...)
rebuilds its handle on the cluster from this file: ports, PIDs and which nodes are paused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gapwatch.testing._config import NodeSpec
from gapwatch.testing._errors import ClusterStateError
from gapwatch.testing._node import NodeProcess

STATE_FILE = "cluster.json"


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """One node as last seen by the process that started or signalled it."""

    node_id: int
    port: int
    controller_port: int
    pid: int | None
    is_paused: bool


@dataclass(frozen=True, slots=True)
class ClusterRecord:
    """Everything needed to signal, restart or stop a cluster from another process."""

    version: str
    java: str
    jars_dir: str
    heap: str
    nodes: tuple[NodeRecord, ...]
    # SecurityPlan.to_record(): how to authenticate (files written before this field
    # existed have none, which means plaintext).
    security: dict[str, object] = field(default_factory=dict)


def write_state(state_dir: Path, record: ClusterRecord) -> None:
    """Replace the state file atomically, so a concurrent reader never sees half of it.

    Readable only by its owner: a secured cluster's record holds the users' passwords."""
    path = state_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    write_private(tmp, json.dumps(asdict(record), indent=2) + "\n")
    tmp.replace(path)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read, whatever mode an old one had."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def read_state(state_dir: Path) -> ClusterRecord:
    """Load the state file; :class:`ClusterStateError` if it is missing or unreadable."""
    path = state_dir / STATE_FILE
    try:
        raw = json.loads(path.read_text())
        return ClusterRecord(
            version=str(raw["version"]),
            java=str(raw["java"]),
            jars_dir=str(raw["jars_dir"]),
            heap=str(raw["heap"]),
            nodes=tuple(NodeRecord(**node) for node in raw["nodes"]),
            security=dict(raw.get("security") or {}),
        )
    except FileNotFoundError:
        raise ClusterStateError(f"no cluster state in {state_dir} (was 'up' run?)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ClusterStateError(f"unreadable cluster state {path}: {exc!r}") from exc


def node_records(nodes: Iterable[NodeProcess]) -> tuple[NodeRecord, ...]:
    """What the state file keeps of each node process."""
    return tuple(
        NodeRecord(n.spec.node_id, n.spec.port, n.spec.controller_port, n.pid, n.is_paused)
        for n in nodes
    )


def adopt_nodes(state_dir: Path, record: ClusterRecord) -> dict[int, NodeProcess]:
    """Handles on the node processes a state file lists, keyed by node id."""
    nodes: dict[int, NodeProcess] = {}
    for entry in record.nodes:
        spec = NodeSpec(
            entry.node_id, entry.port, entry.controller_port, state_dir / f"node-{entry.node_id}"
        )
        node = NodeProcess(spec, pid=entry.pid)
        node.is_paused = entry.is_paused
        nodes[spec.node_id] = node
    return nodes
