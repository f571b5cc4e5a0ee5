"""``gapwatch loadgen``: send stamped records at a rate, injecting faults on the client side.

Prints, as JSON on stdout at the end, exactly what it injected per stream (topic,
partition, producer, epoch): dropped, duplicated and reordered sequences, failed sends,
the last sequence and whether the producer crashed. Progress goes to stderr. See
``docs/loadgen.md``. Exit status: 0 after a run, 2 on a bad option, 1 if the run failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys

from gapwatch.errors import GapwatchError
from gapwatch.producer.config import DEFAULT_REPORT_TOPIC
from gapwatch.producer.faults import FaultPlan
from gapwatch.producer.loadgen import LoadgenConfig, run_loadgen

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``loadgen`` sub-command."""
    parser = subparsers.add_parser(
        "loadgen",
        help="send stamped records with optional client-side fault injection",
        description=__doc__,
    )
    add = parser.add_argument
    add(
        "--bootstrap-servers",
        default=os.environ.get("GAPWATCH_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        help="Kafka bootstrap servers (default: $GAPWATCH_BOOTSTRAP_SERVERS or 127.0.0.1:9092)",
    )
    add("--topic", action="append", dest="topics", help="topic to write (repeatable)")
    add("--partitions", type=int, help="create missing topics with this many partitions")
    add("--replication-factor", type=int, default=1, help="for created topics (default 1)")
    add("--rate", type=float, default=1000.0, help="records/s over all producers (0: max)")
    add("--count", type=int, help="stop after this many records")
    add("--duration", type=float, help="stop after this many seconds (default 10 w/o --count)")
    add("--keys", type=int, default=0, help="number of distinct keys (0: unkeyed)")
    add("--value-size", type=int, default=100, help="value bytes per record")
    add("--producers", type=int, default=1, help="number of producer ids")
    add("--producer-prefix", default=None, help="producer ids are <prefix>-<n>")
    add("--acks", choices=("0", "1", "all"), default="all")
    add("--idempotent", action="store_true", help="enable_idempotence=True (needs acks=all)")
    add("--linger-ms", type=int, default=5)
    add("--drop", type=float, default=0.0, help="probability a record is stamped, not sent")
    add("--duplicate", type=float, default=0.0, help="probability a record is sent twice")
    add("--reorder", type=float, default=0.0, help="probability a record is held back")
    add("--reorder-depth", type=int, default=3, help="later records sent before a held one")
    add("--crash", type=int, default=0, help="producers that end without a final report")
    add("--seed", type=int, default=0, help="seed of keys and faults (repeatable runs)")
    add("--report-topic", default=DEFAULT_REPORT_TOPIC)
    add("--report-interval", type=float, default=1.0, help="seconds between reports")
    add("--output", help="also write the JSON truth to this file")
    parser.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> LoadgenConfig:
    """The validated run configuration of the parsed options."""
    duration = args.duration
    if duration is None and args.count is None:
        duration = 10.0
    acks: int | str = "all" if args.acks == "all" else int(args.acks)
    config = LoadgenConfig(
        bootstrap_servers=args.bootstrap_servers,
        topics=tuple(args.topics or ("gapwatch-load",)),
        partitions=args.partitions,
        replication_factor=args.replication_factor,
        rate=args.rate,
        count=args.count,
        duration_s=duration,
        keys=args.keys,
        value_size=args.value_size,
        producers=args.producers,
        acks=acks,
        idempotent=args.idempotent,
        linger_ms=args.linger_ms,
        faults=FaultPlan(
            drop=args.drop,
            duplicate=args.duplicate,
            reorder=args.reorder,
            reorder_depth=args.reorder_depth,
            seed=args.seed,
        ),
        crash_producers=args.crash,
        report_topic=args.report_topic,
        report_interval_s=args.report_interval,
        seed=args.seed,
        **({"producer_prefix": args.producer_prefix} if args.producer_prefix else {}),
    )
    return config.validate()


def run(args: argparse.Namespace) -> int:
    """Handler of ``gapwatch loadgen``."""
    try:
        config = config_from_args(args)
    except GapwatchError as exc:
        print(f"gapwatch loadgen: {exc}", file=sys.stderr)
        return 2
    print(
        f"gapwatch loadgen: {config.producers} producer(s) -> {', '.join(config.topics)} "
        f"at {config.rate or 'max'} records/s",
        file=sys.stderr,
    )
    try:
        truth = asyncio.run(run_loadgen(config))
    except GapwatchError as exc:
        print(f"gapwatch loadgen: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"gapwatch loadgen: run failed: {exc!r}", file=sys.stderr)
        return 1
    text = json.dumps(truth, indent=2)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text + "\n")
    print(text)
    totals = truth["totals"]
    print(
        f"gapwatch loadgen: sent {truth['run']['records_sent']}, dropped {totals['dropped']}, "
        f"duplicated {totals['duplicated']}, reordered {totals['reordered']}, "
        f"failed {totals['failed']}, crashed producers {totals['crashed_producers']}",
        file=sys.stderr,
    )
    return 0
