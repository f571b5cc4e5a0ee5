"""``gapwatch acls``: the exact Kafka ACLs a monitor or a producer needs, printed or applied.

Prints them as ``kafka-acls.sh`` commands and as a Strimzi ``KafkaUser`` resource. With
``--apply`` and an admin's connection settings (the monitor's flags: ``--bootstrap-servers``,
``--security-protocol``, ``--sasl-*``, ``--ssl-*`` and their ``GAPWATCH_*`` variables) it
creates them, and creates as the admin every missing topic the
role owns (the monitor's checkpoint, gap log and report topics; the producer's report
topic; the canary's topic) with the settings gapwatch gives them, so the principal needs no CREATE.
``--allow-create`` grants CREATE on those topics instead. ``--role mirror-source`` gives
the read-only ACLs a monitor of MirrorMaker 2 copies needs on the mirror's SOURCE cluster,
for the source topics named by ``--topic``/``--topic-pattern`` (no topic is created there).
Which ACLs, and why each: :mod:`gapwatch.kafka.acls` and ``docs/security.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from gapwatch.commands.acl_forms import kafka_acls_commands, strimzi_kafka_user
from gapwatch.errors import ConfigError, GapwatchError
from gapwatch.kafka.acls import (
    Acl,
    CanaryAccess,
    MirrorSourceAccess,
    MonitorAccess,
    ProducerAccess,
    canary_acls,
    mirror_source_acls,
    monitor_acls,
    producer_acls,
)
from gapwatch.kafka.canary.settings import DEFAULT_CANARY_TOPIC
from gapwatch.kafka.settings import KafkaSettings
from gapwatch.monitor.config import (
    CheckpointSettings,
    GapLogSettings,
    MonitorConfig,
    ReportSettings,
    WatchSettings,
)
from gapwatch.monitor.config_sources import add_security_arguments, load_security


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``acls`` sub-command."""
    parser = subparsers.add_parser(
        "acls",
        help="print (or --apply) the Kafka ACLs a monitor or producer needs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--principal", required=True, help="User:NAME, the principal the ACLs are for")
    add(
        "--role",
        choices=("monitor", "producer", "canary", "mirror-source"),
        default="monitor",
        help="mirror-source: the monitor's read-only access to a mirror's source cluster "
        "(--topic names the source topics, such as orders for the copy east.orders)",
    )
    add("--group-id", default=WatchSettings().group_id, help="the monitor's consumer group")
    add("--topic", action="append", default=[], help="watched or written topic; repeatable")
    add(
        "--topic-pattern",
        action="append",
        default=[],
        metavar="PREFIX",
        help="topics starting with PREFIX (a PREFIXED ACL; give the literal prefix your "
        "--topic-pattern regular expression starts with); repeatable",
    )
    add("--checkpoint-topic", default=CheckpointSettings().topic)
    add("--gap-log-topic", default=GapLogSettings().topic)
    add(
        "--gap-history-retention",
        type=float,
        default=GapLogSettings().history_retention,
        help="the monitor's gap_history_retention (s): the gap log topic's retention",
    )
    add("--report-topic", default=ReportSettings().topic)
    add("--canary-topic", default=DEFAULT_CANARY_TOPIC, help="--role canary: its topic")
    add("--no-reports", action="store_true", help="the monitor reads (producer: writes) none")
    add("--allow-create", action="store_true", help="grant CREATE on the role's own topics")
    add(
        "--format",
        choices=("all", "kafka-acls", "strimzi"),
        default="all",
        help="what to print (default: both)",
    )
    add("--strimzi-cluster", default="my-cluster", help="the KafkaUser's strimzi.io/cluster")
    add(
        "--strimzi-authentication",
        choices=("scram-sha-512", "tls", "tls-external"),
        default="scram-sha-512",
    )
    add("--apply", action="store_true", help="create the ACLs and missing topics as the admin")
    parser.add_argument(
        "--bootstrap-servers", help="with --apply: the cluster, HOST:PORT[,HOST:PORT]"
    )
    # The admin's credentials, with the monitor's flags and variables (--sasl-password-file,
    # GAPWATCH_SASL_PASSWORD, OAUTHBEARER token sources...).
    add_security_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``gapwatch acls``: 0 when printed (or applied), 1 if applying failed, 2 on
    bad arguments."""
    problem = argument_problem(args)
    if problem:
        print(f"gapwatch acls: {problem}", file=sys.stderr)
        return 2
    acls = role_acls(args)
    text = []
    if args.format in ("all", "kafka-acls"):
        text.append(kafka_acls_commands(acls, bootstrap=args.bootstrap_servers))
    if args.format in ("all", "strimzi"):
        text.append(
            strimzi_kafka_user(
                acls,
                principal=args.principal,
                cluster=args.strimzi_cluster,
                authentication=args.strimzi_authentication,
            )
        )
    print("\n".join(text), end="")
    if not args.apply:
        return 0
    try:
        created = asyncio.run(apply(args, acls))
    except (GapwatchError, TimeoutError) as exc:
        print(f"gapwatch acls: {exc or 'timed out'}", file=sys.stderr)
        return 1
    topics = ", ".join(created) if created else "none missing"
    print(
        f"# applied: {len(acls)} ACLs for {args.principal}; topics created: {topics}",
        file=sys.stderr,
    )
    return 0


def argument_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments, or ``None``."""
    kind, sep, name = args.principal.partition(":")
    if not sep or not kind or not name:
        return f"--principal must be TYPE:NAME such as User:gapwatch, not {args.principal!r}"
    if not args.topic and not args.topic_pattern and args.role != "canary":
        return "give --topic (repeatable) or --topic-pattern"
    if args.role == "mirror-source" and args.allow_create:
        return "--role mirror-source creates nothing on the source: drop --allow-create"
    if args.apply and not args.bootstrap_servers:
        return "--apply needs --bootstrap-servers (and the admin's --sasl-*/--ssl-* settings)"
    return None


def role_acls(args: argparse.Namespace) -> list[Acl]:
    """The ACLs of ``--role`` for the parsed arguments."""
    report_topic = None if args.no_reports else args.report_topic
    if args.role == "canary":
        return canary_acls(
            CanaryAccess(
                principal=args.principal, topic=args.canary_topic, allow_create=args.allow_create
            )
        )
    if args.role == "mirror-source":
        return mirror_source_acls(
            MirrorSourceAccess(
                principal=args.principal,
                topics=tuple(args.topic),
                topic_prefixes=tuple(args.topic_pattern),
            )
        )
    if args.role == "producer":
        return producer_acls(
            ProducerAccess(
                principal=args.principal,
                report_topic=report_topic,
                topics=tuple(args.topic),
                topic_prefixes=tuple(args.topic_pattern),
                allow_create=args.allow_create,
            )
        )
    return monitor_acls(
        MonitorAccess(
            principal=args.principal,
            group_id=args.group_id,
            checkpoint_topic=args.checkpoint_topic,
            gap_log_topic=args.gap_log_topic,
            report_topic=report_topic,
            topics=tuple(args.topic),
            topic_prefixes=tuple(args.topic_pattern),
            allow_create=args.allow_create,
        )
    )


async def apply(args: argparse.Namespace, acls: Sequence[Acl]) -> list[str]:
    """Create the role's missing own topics (unless ``--allow-create``) and ``acls``, as the
    admin; returns the topics created."""
    # Imported here: printing must not need a cluster, nor load aiokafka.
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.client import AIOKafkaClient

    from gapwatch.kafka.acl_requests import create_acls
    from gapwatch.kafka.canary.runner import create_canary_topic
    from gapwatch.kafka.settings import client_kwargs
    from gapwatch.kafka.startup_errors import explained_start
    from gapwatch.kafka.topics import REPORT_TOPIC_CONFIGS, REPORT_TOPIC_PARTITIONS, ensure_topic
    from gapwatch.monitor.app import ensure_own_topics

    config = admin_config(args)
    kwargs = client_kwargs(config.kafka, suffix="-acls")
    created: list[str] = []
    async with asyncio.timeout(60.0), explained_start(kwargs):
        client = AIOKafkaClient(**kwargs)
        admin = AIOKafkaAdminClient(**kwargs)
        try:
            await client.bootstrap()
            await admin.start()
            # A mirror's source is only read: nothing of gapwatch's is created there.
            if not args.allow_create and args.role != "mirror-source":
                before = set(await admin.list_topics())
                if args.role == "monitor":
                    owned = [config.checkpoints.topic, config.gap_log.topic]
                    if config.reports.enabled:
                        owned.append(config.reports.topic)
                    await ensure_own_topics(admin, config, only=owned)
                elif args.role == "canary":
                    await create_canary_topic(admin, args.canary_topic)
                elif config.reports.enabled:
                    await ensure_topic(
                        admin,
                        config.reports.topic,
                        partitions=REPORT_TOPIC_PARTITIONS,
                        configs=REPORT_TOPIC_CONFIGS,
                    )
                created = sorted(set(await admin.list_topics()) - before)
            await create_acls(client, acls)
        finally:
            await admin.close()
            await client.close()
    return created


def admin_config(args: argparse.Namespace) -> MonitorConfig:
    """The admin's connection and the role's topic names, as a monitor configuration (so
    topics are created with exactly the monitor's settings)."""
    try:
        security = load_security(args, os.environ)
    except ConfigError as exc:
        raise GapwatchError(f"invalid admin connection: {exc}") from None
    kafka = KafkaSettings(
        bootstrap_servers=tuple(args.bootstrap_servers.split(",")),
        client_id="gapwatch-acls",
        security=security,
    )
    try:
        kafka.validate()
    except ConfigError as exc:
        raise GapwatchError(f"invalid admin connection: {exc}") from None
    return MonitorConfig(
        kafka=kafka,
        checkpoints=CheckpointSettings(topic=args.checkpoint_topic),
        gap_log=GapLogSettings(
            topic=args.gap_log_topic, history_retention=args.gap_history_retention
        ),
        reports=ReportSettings(topic=args.report_topic, enabled=not args.no_reports),
    )
