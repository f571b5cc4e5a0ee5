"""The grammar of ``python -m gapwatch.testing.kafka``: its commands and options.

The commands themselves run in :func:`gapwatch.testing.kafka.main`; this module knows
nothing of the cluster, so the cluster module can use it without an import cycle.
"""

from __future__ import annotations

import argparse

FAULTS = ("stop", "kill", "pause", "resume", "restart")
# Spelled out here rather than imported so the grammar stays free of the cluster's modules;
# a unit test checks they match gapwatch.testing._security.
SECURITY_MODES = ("plaintext", "ssl", "sasl_plaintext", "sasl_ssl")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")


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
    up.add_argument(
        "--security",
        choices=SECURITY_MODES,
        default="plaintext",
        help="the client listener's protocol (default plaintext); ssl means mutual TLS",
    )
    up.add_argument(
        "--sasl-mechanism",
        choices=SASL_MECHANISMS,
        default=None,
        help="with sasl_plaintext/sasl_ssl (default SCRAM-SHA-512)",
    )
    up.add_argument(
        "--user",
        dest="users",
        action="append",
        default=[],
        metavar="NAME:PASSWORD",
        help="a user besides the super user 'admin' (repeatable); in ssl mode it gets a "
        "client certificate with CN=NAME",
    )
    up.add_argument(
        "--authorizer",
        action="store_true",
        help="turn on Kafka's StandardAuthorizer; only 'admin' may do anything without ACLs",
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
