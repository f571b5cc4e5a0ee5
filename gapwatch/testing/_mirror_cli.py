"""The grammar of ``python -m gapwatch.testing.mirror``: its commands and options.

The commands run in :func:`gapwatch.testing.mirror.main`; this module knows nothing of
MirrorMaker's process, like :mod:`._cli` for the cluster.
"""

from __future__ import annotations

import argparse

from gapwatch.testing._cli import parse_setting
from gapwatch.testing._mirror_config import (
    DEFAULT_OFFSET_FLUSH_INTERVAL_MS,
    DEFAULT_REFRESH_TOPICS_INTERVAL_S,
    OFFSET_RESETS,
    REPLICATION_POLICIES,
)


def _add_wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-wait", action="store_true", help="return once the JVM is launched, before copying"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=180.0,
        help="seconds to wait until MirrorMaker copies (default 180)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m gapwatch.testing.mirror",
        description="A real MirrorMaker 2 (dedicated mode) between two Kafka clusters, for tests.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fetch = commands.add_parser("fetch", help="download MirrorMaker 2's jars into the cache")
    fetch.add_argument("--kafka-version", help="default: $GAPWATCH_KAFKA_VERSION or pinned")

    up = commands.add_parser(
        "up", help="start a detached MirrorMaker and wait until it copies (prints its log path)"
    )
    up.add_argument("--source", required=True, metavar="BOOTSTRAP", help="source cluster")
    up.add_argument("--target", required=True, metavar="BOOTSTRAP", help="target cluster")
    up.add_argument(
        "--source-alias", required=True, metavar="ALIAS", help="the source's name (ALIAS.topic)"
    )
    up.add_argument(
        "--topics", required=True, metavar="REGEX", help="source topics to mirror (Java regex)"
    )
    up.add_argument("--state-dir", required=True, help="directory for config, log and PID")
    up.add_argument(
        "--replication-policy",
        choices=sorted(REPLICATION_POLICIES),
        default="default",
        help="default: ALIAS.topic on the target; identity: the same name",
    )
    up.add_argument(
        "--offset-reset",
        choices=OFFSET_RESETS,
        default="earliest",
        help="where a partition with no stored offset starts (default earliest)",
    )
    up.add_argument(
        "--offset-flush-interval-ms",
        type=int,
        default=DEFAULT_OFFSET_FLUSH_INTERVAL_MS,
        help=f"how often copied offsets are stored (default {DEFAULT_OFFSET_FLUSH_INTERVAL_MS})",
    )
    up.add_argument(
        "--refresh-topics-interval-s",
        type=int,
        default=DEFAULT_REFRESH_TOPICS_INTERVAL_S,
        help=f"how often new source topics are looked for (default "
        f"{DEFAULT_REFRESH_TOPICS_INTERVAL_S})",
    )
    up.add_argument(
        "--set",
        dest="settings",
        type=parse_setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a further mm2.properties entry (repeatable; wins over the defaults)",
    )
    up.add_argument("--kafka-version", help="default: $GAPWATCH_KAFKA_VERSION or pinned")
    up.add_argument("--heap", default=None, help="JVM -Xmx (default 256m)")
    _add_wait_options(up)

    start = commands.add_parser("start", help="start a stopped MirrorMaker with its settings")
    start.add_argument("--state-dir", required=True)
    start.add_argument(
        "--offset-reset", choices=OFFSET_RESETS, default=None, help="change the reset policy"
    )
    _add_wait_options(start)

    for name, help_text in (
        ("stop", "SIGTERM: MirrorMaker stores its offsets and exits (SIGKILL after 30 s)"),
        ("kill", "SIGKILL: MirrorMaker dies at once, offsets since the last flush unstored"),
        ("down", "stop MirrorMaker; its files stay, so 'up' can start it with new flags"),
        ("status", "show whether MirrorMaker runs, its settings and log"),
        ("forget", "delete the stored offsets (mm2-offsets.ALIAS.internal); only while stopped"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--state-dir", required=True)

    delete = commands.add_parser(
        "delete-records",
        help="move a source partition's log start: delete its records below --before",
    )
    delete.add_argument("--state-dir", required=True)
    delete.add_argument("--topic", required=True, help="the source topic")
    delete.add_argument("--partition", type=int, required=True)
    delete.add_argument("--before", type=int, required=True, metavar="OFFSET")
    return parser
