"""Least privilege on a real broker: a monitor with exactly the ACLs ``gapwatch acls --apply``
created works end to end, and without any one of them its start names that one.

One one-node cluster for the module: SASL SCRAM-SHA-512 with the StandardAuthorizer, the
admin (super user) and restricted users ``mon`` (a monitor), ``app`` (a producer) and ``src``
(the monitor's reader of a mirror's source cluster).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import TopicAuthorizationFailedError
from aiokafka.protocol.admin import DeleteAclsRequest, DescribeAclsRequest
from monitor_support import gap_ranges, get_json, monitor_config, start_monitor, wait_until
from prometheus_client import CollectorRegistry
from security_support import IGNORE_DROPPED_TLS_SOCKETS

from gapwatch.cli import main
from gapwatch.core.wire import encode_stamp
from gapwatch.errors import KafkaAuthorizationError
from gapwatch.kafka.acl_requests import create_acls
from gapwatch.kafka.acls import (
    CLUSTER_NAME,
    Acl,
    CanaryAccess,
    MirrorSourceAccess,
    Operation,
    PatternType,
    ProducerAccess,
    ResourceType,
    canary_acls,
    denied_line,
    mirror_source_acls,
    monitor_acls,
    producer_acls,
)
from gapwatch.kafka.canary.runner import Canary
from gapwatch.kafka.canary.settings import CanarySettings
from gapwatch.kafka.settings import KafkaSettings, SecuritySettings, client_kwargs
from gapwatch.monitor.app import RunningMonitor, monitor_access
from gapwatch.monitor.config import MirrorSettings, MirrorSource, MonitorConfig, ReportSettings
from gapwatch.producer import ReportConfig, StampedProducer
from gapwatch.testing.kafka import KafkaCluster, SecurityPlan, User
from gapwatch.testing.pytest_plugin import MakeTopic, SecuredKafka

pytestmark = [pytest.mark.kafka, *IGNORE_DROPPED_TLS_SOCKETS]

MON = User("mon", "mon-secret")
APP = User("app", "app-secret")
SRC = User("src", "src-secret")
PLAN = SecurityPlan(
    mode="sasl_plaintext",
    sasl_mechanism="SCRAM-SHA-512",
    users=(MON, APP, SRC),
    has_authorizer=True,
)
ANY = 1  # the ANY filter of resource type, pattern type, operation and permission
# How long a broker may take to apply an ACL change the controller committed.
ACL_PROPAGATION_S = 10.0


@pytest.fixture(scope="module")
def cluster(secured_kafka: SecuredKafka) -> KafkaCluster:
    """The module's one secured cluster."""
    return secured_kafka(PLAN)


def admin_kwargs(cluster: KafkaCluster) -> dict[str, Any]:
    """aiokafka arguments of the admin (a super user)."""
    return client_kwargs(kafka_settings(cluster, "admin"))


def kafka_settings(cluster: KafkaCluster, user: str) -> KafkaSettings:
    """``user``'s connection to ``cluster`` as gapwatch's settings."""
    client = cluster.client_config(user)
    return KafkaSettings(
        bootstrap_servers=tuple(client.bootstrap_servers.split(",")),
        fetch_max_wait_ms=100,
        security=SecuritySettings(
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username=client.sasl_username,
            sasl_password=client.sasl_password,
        ),
    )


def restricted_config(cluster: KafkaCluster, topic: str) -> MonitorConfig:
    """A test monitor for ``topic`` connecting as ``mon``, reading producer reports."""
    config = monitor_config(cluster.bootstrap_servers, [topic], f"g-{topic}")
    return dataclasses.replace(
        config,
        kafka=kafka_settings(cluster, MON.name),
        reports=ReportSettings(topic=f"reports-{topic}", enabled=True),
    ).validate()


def acls_argv(cluster: KafkaCluster, config: MonitorConfig) -> list[str]:
    """``gapwatch acls --apply`` for ``config``'s monitor, as the admin."""
    return [
        "acls",
        "--principal",
        f"User:{MON.name}",
        "--group-id",
        config.watch.group_id,
        *(arg for topic in config.watch.topics for arg in ("--topic", topic)),
        "--checkpoint-topic",
        config.checkpoints.topic,
        "--gap-log-topic",
        config.gap_log.topic,
        "--report-topic",
        config.reports.topic,
        *admin_apply_args(cluster),
    ]


def admin_apply_args(cluster: KafkaCluster) -> list[str]:
    """``--apply`` with the admin's connection, printing only the kafka-acls.sh form."""
    admin = cluster.client_config("admin")
    return [
        "--format",
        "kafka-acls",
        "--apply",
        "--bootstrap-servers",
        admin.bootstrap_servers,
        "--security-protocol",
        "SASL_PLAINTEXT",
        "--sasl-mechanism",
        "SCRAM-SHA-512",
        "--sasl-username",
        "admin",
        "--sasl-password",
        str(admin.sasl_password),
    ]


@asynccontextmanager
async def admin_client(cluster: KafkaCluster) -> AsyncIterator[AIOKafkaClient]:
    """aiokafka's low-level client, connected as the admin."""
    client = AIOKafkaClient(**admin_kwargs(cluster))
    await client.bootstrap()
    try:
        yield client
    finally:
        await client.close()


async def acls_of(client: AIOKafkaClient, principal: str) -> set[Acl]:
    """Every ALLOW ACL of ``principal`` on the cluster."""
    request = DescribeAclsRequest(ANY, None, ANY, principal, None, ANY, ANY)
    response = await client.send(client.get_random_node(), request)
    assert response.error_code == 0, response
    return {
        Acl(
            acl_principal,
            ResourceType(resource_type),
            name,
            Operation(operation),
            PatternType(pattern),
        )
        for resource_type, name, pattern, entries in response.resources
        for acl_principal, _host, operation, _permission in entries
    }


async def delete_acl(client: AIOKafkaClient, acl: Acl) -> None:
    """Remove exactly ``acl``."""
    request = DeleteAclsRequest(
        acl.resource_type.value,
        acl.resource_name,
        acl.pattern_type.value,
        acl.principal,
        "*",
        acl.operation.value,
        3,  # ALLOW
    )
    response = await client.send(client.get_random_node(), request)
    assert all(result[0] == 0 for result in response.filter_responses), response


async def start_error(config: MonitorConfig) -> str | None:
    """The one line a start of ``config``'s monitor fails with, or None if it starts."""
    monitor = RunningMonitor(config, registry=CollectorRegistry())
    try:
        await monitor.start()
    except KafkaAuthorizationError as exc:
        return str(exc)
    finally:
        await monitor.stop()
    return None


async def wait_for_start_error(config: MonitorConfig, expected: str | None) -> str | None:
    """Start until the start's outcome is ``expected`` (an ACL change reaches the broker a
    moment after the controller committed it); the last outcome."""
    deadline = time.monotonic() + ACL_PROPAGATION_S
    while True:
        outcome = await start_error(config)
        if outcome == expected or time.monotonic() > deadline:
            return outcome
        await asyncio.sleep(0.2)


async def send_stamped_as_admin(
    cluster: KafkaCluster, topic: str, seqs: Sequence[int], *, producer: str = "p1"
) -> None:
    """One stamped record per sequence to partition 0, written by the admin."""
    client = AIOKafkaProducer(**admin_kwargs(cluster), acks="all", linger_ms=5)
    await client.start()
    try:
        futures = [
            await client.send(topic, b"x", partition=0, headers=encode_stamp(producer, 1, seq))
            for seq in seqs
        ]
        await asyncio.gather(*futures)
    finally:
        await client.stop()


async def test_monitor_with_exactly_the_applied_acls_reports_a_loss_exactly(
    cluster: KafkaCluster, make_topic: MakeTopic
) -> None:
    """``gapwatch acls --apply`` creates the printed ACLs and the monitor's own topics; the
    monitor running as ``mon`` with those ACLs only finds an injected loss exactly."""
    topic = await make_topic(cluster=cluster, partitions=1)
    config = restricted_config(cluster, topic)
    assert await asyncio.to_thread(main, acls_argv(cluster, config)) == 0
    async with admin_client(cluster) as client:
        assert await acls_of(client, f"User:{MON.name}") == set(
            monitor_acls(monitor_access(config))
        )
    # The monitor's own topics exist (the admin created them), so mon needs no CREATE.
    assert not any(a.operation is Operation.CREATE for a in monitor_acls(monitor_access(config)))
    await send_stamped_as_admin(cluster, topic, [s for s in range(30) if s not in (7, 8, 9)])
    # The monitor may start before the broker has applied the last ACL: retried, bounded.
    assert await wait_for_start_error(config, None) is None
    monitor = await start_monitor(config)
    try:

        async def confirmed() -> list[dict[str, object]] | None:
            gaps = (await get_json(monitor, "/gaps"))["gaps"]
            return gaps if gap_ranges(gaps, "confirmed") else None

        gaps = await wait_until(confirmed)
        assert gap_ranges(gaps, "confirmed") == {(0, 7, 9)}

        # The durability audit reads the topic's configs and placement with these ACLs too.
        async def audited() -> dict[str, Any] | None:
            body: dict[str, Any] = await get_json(monitor, "/topics")
            return body if body["audited_at"] is not None else None

        body = await wait_until(audited)
        assert body["error"] is None
        assert [t["topic"] for t in body["topics"]] == [topic]
    finally:
        await monitor.stop()


async def send_timed_as_admin(
    cluster: KafkaCluster, topic: str, seqs: Sequence[int], *, base_ms: int
) -> None:
    """One stamped record per sequence to partition 0, record ``seq`` at ``base_ms + seq``
    (a copy keeps its source's timestamps, which is how a lookup finds the range)."""
    client = AIOKafkaProducer(**admin_kwargs(cluster), acks="all", linger_ms=5)
    await client.start()
    try:
        futures = [
            await client.send(
                topic,
                b"x",
                partition=0,
                timestamp_ms=base_ms + seq,
                headers=encode_stamp("p1", 1, seq),
            )
            for seq in seqs
        ]
        await asyncio.gather(*futures)
    finally:
        await client.stop()


async def test_a_monitor_of_a_copy_reads_the_source_with_the_mirror_source_acls_only(
    cluster: KafkaCluster, make_topic: MakeTopic
) -> None:
    """``gapwatch acls --role mirror-source --apply`` grants ``src`` Read on the source
    topic and nothing else; a monitor (as ``mon``, with its own applied ACLs) of the copy
    ``east.<topic>`` whose source is read as ``src`` attributes a gap to the mirror, so
    those ACLs are enough for the group-less source lookups (without them the origin is
    unknown: Kafka hides the topic)."""
    source = await make_topic(cluster=cluster, partitions=1)
    copy = f"east.{source}"
    await cluster.create_topic(copy)
    config = restricted_config(cluster, copy)
    mirror = MirrorSettings(
        sources=(
            MirrorSource(
                "east",
                config.kafka.bootstrap_servers,
                kafka_settings(cluster, SRC.name).security,
            ),
        ),
        lag_interval=1.0,
        lookup_retries=1,
    )
    config = dataclasses.replace(config, mirror=mirror).validate()
    assert await asyncio.to_thread(main, acls_argv(cluster, config)) == 0
    source_argv = ["acls", "--principal", f"User:{SRC.name}", "--role", "mirror-source"]
    source_argv += ["--topic", source, *admin_apply_args(cluster)]
    assert await asyncio.to_thread(main, source_argv) == 0
    granted = mirror_source_acls(MirrorSourceAccess(f"User:{SRC.name}", topics=(source,)))
    assert granted == [
        Acl(f"User:{SRC.name}", ResourceType.TOPIC, source, Operation.READ, PatternType.LITERAL)
    ]
    async with admin_client(cluster) as client:
        assert await acls_of(client, f"User:{SRC.name}") == set(granted)
    base_ms = int(time.time() * 1000) - 60_000
    await send_timed_as_admin(cluster, source, range(30), base_ms=base_ms)
    copied = [s for s in range(30) if s not in (7, 8, 9)]
    await send_timed_as_admin(cluster, copy, copied, base_ms=base_ms)
    assert await wait_for_start_error(config, None) is None
    monitor = await start_monitor(config)
    try:

        async def decided() -> list[dict[str, Any]] | None:
            gaps = (await get_json(monitor, "/gaps", state="confirmed"))["gaps"]
            return gaps if gaps and gaps[0]["origin"] not in (None, "pending") else None

        (gap,) = await wait_until(decided, within=60)
        assert (gap["first_seq"], gap["last_seq"]) == (7, 9)
        assert (gap["origin"], gap["source_cluster"], gap["source_topic"]) == (
            "mirror",
            "east",
            source,
        )
        assert gap["origin_reason"].startswith("in-source: ")
    finally:
        await monitor.stop()


async def test_each_missing_acl_is_named_by_the_monitors_start(
    cluster: KafkaCluster, make_topic: MakeTopic
) -> None:
    """Without any one of the applied ACLs the start fails with the line naming it, and
    with it back the monitor starts again."""
    topic = await make_topic(cluster=cluster, partitions=1)
    config = restricted_config(cluster, topic)
    assert await asyncio.to_thread(main, acls_argv(cluster, config)) == 0
    required = monitor_acls(monitor_access(config))
    assert len(required) == 8  # rule 1 (2), 2 (1), 3 (2), 4 (2), 5 (1): bounded loop
    assert await wait_for_start_error(config, None) is None
    outcomes = {}
    async with admin_client(cluster) as client:
        for acl in required:
            await delete_acl(client, acl)
            outcomes[acl] = await wait_for_start_error(config, denied_line(acl))
            await create_acls(client, [acl])
            assert await wait_for_start_error(config, None) is None
    assert outcomes == {acl: denied_line(acl) for acl in required}


async def started_producer(
    kwargs: dict[str, Any], reports: str, *, first_topic: str
) -> StampedProducer:
    """A StampedProducer that has sent one record to ``first_topic``; retried while the
    ACLs just created have not reached the broker (bounded)."""
    deadline = time.monotonic() + ACL_PROPAGATION_S
    while True:
        producer = StampedProducer(
            **kwargs,
            acks="all",
            producer_id="app-1",
            reports=ReportConfig(topic=reports, interval_s=0.2),
            registry=None,
        )
        await producer.start()
        try:
            await producer.send_and_wait(first_topic, b"x", partition=0)
        except TopicAuthorizationFailedError:
            await producer.stop()
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
        else:
            return producer


async def test_a_producer_with_the_applied_acls_writes_and_reports_without_warnings(
    cluster: KafkaCluster, make_topic: MakeTopic, caplog: pytest.LogCaptureFixture
) -> None:
    """``gapwatch acls --role producer --apply`` creates the report topic and Write ACLs;
    a StampedProducer as ``app`` sends and publishes its reports, with nothing refused and
    no warning (it does not try to create the existing report topic)."""
    topic = await make_topic(cluster=cluster, partitions=1)
    reports = f"reports-{topic}"
    argv = ["acls", "--principal", f"User:{APP.name}", "--role", "producer"]
    argv += ["--topic", topic, "--report-topic", reports, *admin_apply_args(cluster)]
    assert await asyncio.to_thread(main, argv) == 0
    expected = producer_acls(
        ProducerAccess(principal=f"User:{APP.name}", report_topic=reports, topics=(topic,))
    )
    async with admin_client(cluster) as client:
        assert await acls_of(client, f"User:{APP.name}") == set(expected)
    kwargs = client_kwargs(kafka_settings(cluster, APP.name))
    caplog.set_level("WARNING", logger="gapwatch")
    producer = await started_producer(kwargs, reports, first_topic=topic)
    try:
        for _ in range(9):
            await producer.send_and_wait(topic, b"x", partition=0)
    finally:
        await producer.stop()
    stats = producer.report_stats
    assert stats.published[topic] >= 1
    assert not stats.failed
    assert [r.getMessage() for r in caplog.records if r.name.startswith("gapwatch")] == []


def test_the_monitor_command_says_one_line_for_a_missing_acl(
    cluster: KafkaCluster, tmp_path: Any
) -> None:
    """``gapwatch monitor`` as ``mon`` with no ACL on its topic: exit 1, one line on stderr
    naming READ on the topic and ``mon``, no traceback."""
    topic = f"unwatched-{time.monotonic_ns()}"
    asyncio.run(cluster.create_topic(topic, partitions=1, replication_factor=1))
    mon = cluster.client_config(MON.name)
    config_file = tmp_path / "mon.json"
    config_file.write_text(json.dumps(mon.to_json()))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "gapwatch",
            "monitor",
            "--config",
            str(config_file),
            "--topic",
            topic,
            "--group-id",
            f"g-{topic}",
            "--http-port",
            "0",
            # aiokafka's INFO lines ("Authenticated as mon") are not part of the failure.
            "--log-level",
            "WARNING",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1
    assert lines == [
        f"gapwatch monitor: not authorized to read TOPIC {topic}: "
        f"grant READ on TOPIC {topic} to User:mon"
    ]


async def audit_outcome(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and standard error of one ``gapwatch`` run (in a thread: it runs its own
    event loop)."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, argv)
    return code, capsys.readouterr().err


async def test_the_durability_audit_names_a_missing_describe_configs(
    cluster: KafkaCluster, make_topic: MakeTopic, capsys: pytest.CaptureFixture[str]
) -> None:
    """``gapwatch audit --durability`` as ``mon`` with READ but not DESCRIBE_CONFIGS on the
    topic exits 2 with the one line naming the missing ACL; once it is granted, it audits
    (exit 1: a one-node topic has findings)."""
    topic = await make_topic(cluster=cluster, partitions=1)
    principal = f"User:{MON.name}"
    read = Acl(principal, ResourceType.TOPIC, topic, Operation.READ)
    describe_configs = Acl(principal, ResourceType.TOPIC, topic, Operation.DESCRIBE_CONFIGS)
    argv = [
        "audit",
        "--durability",
        "--bootstrap-servers",
        cluster.bootstrap_servers,
        "--topic",
        topic,
        "--timeout",
        "30",
        "--security-protocol",
        "SASL_PLAINTEXT",
        "--sasl-mechanism",
        "SCRAM-SHA-512",
        "--sasl-username",
        MON.name,
        "--sasl-password",
        MON.password,
    ]
    async with admin_client(cluster) as client:
        await create_acls(client, [read])
        denied = f"gapwatch audit: {denied_line(describe_configs)}"

        async def refused_for_describe_configs() -> bool:
            code, err = await audit_outcome(argv, capsys)
            return code == 2 and denied in err

        await wait_until(refused_for_describe_configs, within=ACL_PROPAGATION_S + 30)
        await create_acls(client, [describe_configs])

        async def audited() -> bool:
            return (await audit_outcome(argv, capsys))[0] == 1

        await wait_until(audited, within=ACL_PROPAGATION_S + 30)


async def test_the_canary_with_the_applied_acls_writes_and_is_refused_without(
    cluster: KafkaCluster,
) -> None:
    """As ``app`` with no ACL the canary cannot start; ``gapwatch acls --role canary
    --apply`` creates its topic and exactly the canary's ACLs, after which the canary
    writes and finds the broker available. The ACLs are removed again (other tests count
    ``app``'s)."""
    topic = f"__gapwatch_canary_{time.monotonic_ns()}"
    settings = CanarySettings(enabled=True, topic=topic)
    kwargs = client_kwargs(kafka_settings(cluster, APP.name))
    refused = Canary(settings, client_kwargs=kwargs)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await refused.start()
    finally:
        await refused.stop()
    expected = canary_acls(CanaryAccess(principal=f"User:{APP.name}", topic=topic))
    argv = ["acls", "--principal", f"User:{APP.name}", "--role", "canary"]
    argv += ["--canary-topic", topic, *admin_apply_args(cluster)]
    assert await asyncio.to_thread(main, argv) == 0
    try:
        async with admin_client(cluster) as client:
            granted = await acls_of(client, f"User:{APP.name}")
        # app may hold a producer's ACLs from another test of this module.
        assert {a for a in granted if a.resource_name in (topic, CLUSTER_NAME)} == set(expected)
        deadline = time.monotonic() + ACL_PROPAGATION_S
        canary = Canary(settings, client_kwargs=kwargs)
        while True:
            try:
                await canary.start()
                break
            except TopicAuthorizationFailedError:
                await canary.stop()
                if time.monotonic() > deadline:
                    raise
                canary = Canary(settings, client_kwargs=kwargs)
                await asyncio.sleep(0.5)
        try:

            async def available() -> bool:
                return canary.availability() == {1: True}

            await wait_until(available, within=30.0)
            assert canary.stats.by_broker[1].successes >= 1
            assert canary.stats.check_failures == 0
            assert canary.owners == {0: 1}
        finally:
            await canary.stop()
    finally:
        async with admin_client(cluster) as client:
            for acl in expected:
                await delete_acl(client, acl)
