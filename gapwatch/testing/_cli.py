"""``python -m gapwatch.testing.kafka``: fetch jars, bring a cluster up/down, inject faults.

``up`` starts detached JVMs and records their PIDs in ``<state dir>/cluster.json``; every
other command re-attaches to the cluster through that file, so they can run from any shell.
The bootstrap servers are always the last line ``up`` prints to stdout, for scripts.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gapwatch.testing._config import ConfigValue, resolve_version
from gapwatch.testing._errors import KafkaTestbedError
from gapwatch.testing._maven import fetch_kafka
from gapwatch.testing.kafka import KafkaCluster

FAULTS = ("stop", "kill", "pause", "resume", "restart")


def parse_setting(text: str) -> tuple[str, str]:
    """``key=value`` from ``--set``; argparse reports the ``ValueError`` as a usage error."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def parse_node_setting(text: str) -> tuple[int, str, str]:
    """``ID:key=value`` from ``--node-set``."""
    node, sep, rest = text.partition(":")
    if not sep or not node.isdigit():
        raise argparse.ArgumentTypeError(f"expected NODE_ID:KEY=VALUE, got {text!r}")
    key, value = parse_setting(rest)
    return int(node), key, value


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m gapwatch.testing.kafka",
        description="A throwaway Apache Kafka (KRaft) cluster on 127.0.0.1 for tests.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fetch = commands.add_parser("fetch", help="download Kafka's jars into the cache (once)")
    fetch.add_argument("--kafka-version", help="default: $GAPWATCH_KAFKA_VERSION or pinned")

    up = commands.add_parser("up", help="start a detached cluster; prints bootstrap servers last")
    up.add_argument("--nodes", type=int, default=1, help="number of nodes (default 1)")
    up.add_argument("--state-dir", required=True, help="directory for configs, data, logs, PIDs")
    up.add_argument("--kafka-version", help="default: $GAPWATCH_KAFKA_VERSION or pinned")
    up.add_argument("--heap", default=None, help="JVM -Xmx per node (default 512m)")
    up.add_argument(
        "--set",
        dest="settings",
        type=parse_setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="broker config for every node (repeatable)",
    )
    up.add_argument(
        "--node-set",
        dest="node_settings",
        type=parse_node_setting,
        action="append",
        default=[],
        metavar="ID:KEY=VALUE",
        help="broker config for one node (repeatable)",
    )

    for name, help_text in (
        ("down", "kill every node of the cluster"),
        ("status", "show each node's address and process state"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--state-dir", required=True)

    for fault in FAULTS:
        sub = commands.add_parser(fault, help=f"{fault} one node (by node.id)")
        sub.add_argument("--node", type=int, required=True, help="the node's node.id")
        sub.add_argument("--state-dir", required=True)
        if fault == "restart":
            sub.add_argument("--no-wait", action="store_true", help="do not wait for the broker")
    return parser


def _up(args: argparse.Namespace) -> int:
    node_overrides: dict[int, dict[str, ConfigValue]] = {}
    for node_id, key, value in args.node_settings:
        node_overrides.setdefault(node_id, {})[key] = value
    extra = {"heap": args.heap} if args.heap else {}
    cluster = KafkaCluster(
        nodes=args.nodes,
        state_dir=args.state_dir,
        version=args.kafka_version,
        broker_overrides=dict(args.settings),
        node_overrides=node_overrides,
        detach=True,
        **extra,
    )
    cluster.start()
    for node_id in cluster.node_ids:
        print(
            f"node {node_id}: {cluster.node_bootstrap(node_id)}  log: {cluster.log_path(node_id)}"
        )
    print(cluster.bootstrap_servers, flush=True)
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
            result = fetch_kafka(resolve_version(args.kafka_version))
            verb = "downloaded" if result.downloaded else "cached"
            print(f"Kafka jars {verb} in {result.jars_dir} ({result.seconds:.1f} s)")
            return 0
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
