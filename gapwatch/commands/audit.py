"""``gapwatch audit``: check one topic's offset or time range once and exit.

Reads with a throwaway consumer (no group, nothing committed), prints the gaps found
(same gap model as the monitor) as a table or JSON, and exits 1 when there is loss,
0 when there is none, 2 when the audit could not run.

With ``--durability`` it reads no records: it audits the settings and placement of each
``--topic`` (repeatable) as the monitor's durability audit does, prints the findings and
exits 1 when there is one, 0 when there is none, 2 when the audit could not run (for CI
pipelines that create topics).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import datetime

from gapwatch.errors import GapwatchError
from gapwatch.monitor.config_sources import add_security_arguments, load_security


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``audit`` sub-command."""
    parser = subparsers.add_parser(
        "audit", help="check a topic range once; exit 1 on loss", description=__doc__
    )
    parser.add_argument("--bootstrap-servers", required=True, help="HOST:PORT[,HOST:PORT]")
    parser.add_argument(
        "--topic", required=True, action="append", help="with --durability: repeatable"
    )
    parser.add_argument(
        "--durability",
        action="store_true",
        help="audit the topics' replication, min ISR, unclean election and placement "
        "(metadata and configs only); exit 1 on a finding",
    )
    parser.add_argument("--partition", type=int, action="append", help="repeatable; default all")
    parser.add_argument("--from-offset", type=int, help="first offset (default: log start)")
    parser.add_argument("--to-offset", type=int, help="stop before this offset (default: end)")
    parser.add_argument("--from-time", help="RFC 3339 time to start from instead of an offset")
    parser.add_argument("--json", action="store_true", help="print the gaps as JSON")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after N seconds")
    add_security_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``gapwatch audit``."""
    from gapwatch.commands.gaptable import render_gaps, summarize
    from gapwatch.commands.process_gc import tuned_gc
    from gapwatch.commands.range_audit import run_audit
    from gapwatch.kafka.settings import KafkaSettings, client_kwargs

    if args.durability:
        return run_durability(args)
    if len(args.topic) > 1:
        print(
            "gapwatch audit: one --topic per range audit (several with --durability)",
            file=sys.stderr,
        )
        return 2
    from_time_ms = None
    if args.from_time:
        try:
            moment = datetime.fromisoformat(args.from_time.replace("Z", "+00:00"))
        except ValueError:
            print("gapwatch audit: --from-time must be RFC 3339", file=sys.stderr)
            return 2
        from_time_ms = int(moment.timestamp() * 1000)
    try:
        kafka = KafkaSettings(
            bootstrap_servers=tuple(args.bootstrap_servers.split(",")),
            security=load_security(args, os.environ),
        )
        kafka.validate()
        with tuned_gc():  # after the imports, so they are frozen too
            result = asyncio.run(
                run_audit(
                    client_kwargs=client_kwargs(kafka, suffix="-audit"),
                    topic=args.topic[0],
                    partitions=args.partition,
                    from_offset=args.from_offset,
                    to_offset=args.to_offset,
                    from_time_ms=from_time_ms,
                    deadline_s=args.timeout,
                )
            )
    except (GapwatchError, TimeoutError) as exc:
        print(f"gapwatch audit: {exc or 'timed out'}", file=sys.stderr)
        return 2
    gaps = [gap.to_json() for gap in result.gaps]
    if args.json:
        print(json.dumps({"gaps": gaps, "counters": result.counters}, indent=2))
    else:
        print(render_gaps(gaps))
        print(summarize(gaps))
    return 1 if result.has_loss else 0


def run_durability(args: argparse.Namespace) -> int:
    """``gapwatch audit --durability``: exit 1 on a finding, 0 on none, 2 on an error."""
    from gapwatch.commands.durability_audit import (
        audit_topics,
        render_audits,
        summarize_audits,
    )
    from gapwatch.kafka.acls import principal_of
    from gapwatch.kafka.settings import KafkaSettings, client_kwargs

    try:
        kafka = KafkaSettings(
            bootstrap_servers=tuple(args.bootstrap_servers.split(",")),
            security=load_security(args, os.environ),
        )
        kafka.validate()
        audits = asyncio.run(
            audit_topics(
                client_kwargs=client_kwargs(kafka, suffix="-audit"),
                principal=principal_of(kafka.security),
                topics=args.topic,
                deadline_s=args.timeout,
            )
        )
    except (GapwatchError, TimeoutError) as exc:
        print(f"gapwatch audit: {exc or 'timed out'}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"topics": [a.to_json() for a in audits]}, indent=2))
    else:
        print(render_audits(audits))
        print(summarize_audits(audits))
    return 1 if any(a.findings for a in audits) else 0
