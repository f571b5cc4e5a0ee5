"""Waiting until Kafka nodes serve clients and list each other as registered brokers.

Each node is asked on its own listener, not through any reachable node: after a SIGKILL
the other nodes keep listing the dead broker's old registration until its session times
out (``broker.session.timeout.ms``), so a node restarted within that window would look
registered before it is. A node lists itself only once it is unfenced again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from gapwatch.testing import _admin
from gapwatch.testing._errors import NodeStartError
from gapwatch.testing._node import NodeProcess, port_accepts


def wait_for_brokers(
    nodes: Mapping[int, NodeProcess],
    timeout_s: float,
    *,
    options: Mapping[str, Any] | None = None,
) -> None:
    """Block until every node in ``nodes`` answers clients and lists all of them as
    registered, unfenced brokers; :class:`NodeStartError` with log tails otherwise.

    ``options`` are the aiokafka security arguments of a secured cluster's admin."""
    wanted = set(nodes)
    deadline = time.monotonic() + timeout_s
    seen: set[int] = set()
    while time.monotonic() < deadline:
        for node_id in wanted:
            node = nodes[node_id]
            if not node.is_running():
                raise NodeStartError(
                    f"Kafka node {node_id} exited (code {node.exit_code()}) before it was "
                    f"ready; its logs:\n{node.log_tail()}"
                )
        if all(port_accepts(nodes[i].spec.port) for i in wanted):
            seen = brokers_seen_by_all(nodes, options=options)
            if wanted <= seen:
                return
        time.sleep(0.2)
    missing = sorted(wanted - seen)
    tails = "\n".join(nodes[i].log_tail(15) for i in missing)
    raise NodeStartError(
        f"brokers {missing} not registered after {timeout_s:.0f} s "
        f"(every node asked lists only {sorted(seen)}):\n{tails}"
    )


def brokers_seen_by_all(
    nodes: Mapping[int, NodeProcess], *, options: Mapping[str, Any] | None = None
) -> set[int]:
    """Brokers that every node in ``nodes``, asked on its own listener, lists."""

    async def ask_each() -> set[int]:
        views = [
            await _admin.broker_ids_seen_by(nodes[i].spec.bootstrap, options=options)
            for i in sorted(nodes)
        ]
        return set.intersection(*views) if views else set()

    try:
        return _admin.run_sync(ask_each)
    except Exception:  # a node not serving yet: any client error means retry
        return set()
