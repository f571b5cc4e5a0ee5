"""Every gapwatch client over a secured cluster: loss injected, reported exactly, no secret leaks.

One scenario per security mode (mutual TLS; SCRAM-SHA-512 over plaintext; PLAIN,
SCRAM-SHA-256 and OAUTHBEARER over TLS): the load generator creates the topic (secured admin
client) and sends stamped records with drops (secured StampedProducers and report
publishers); the monitor (consumer, checkpoints, reports, gap log, admin) confirms exactly
the dropped runs; ``gapwatch audit`` (configured by its flags alone) finds the same gaps;
the verifier writes a checkpoint. Neither the password nor the token shows up in the logs
or in ``/streams``.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from monitor_support import get_json, metric_value, monitor_config, start_monitor, wait_until
from prometheus_client import CollectorRegistry
from security_support import IGNORE_DROPPED_TLS_SOCKETS

from gapwatch.cli import main
from gapwatch.kafka.secret import AIOKAFKA_CONNECTION_LOGGER
from gapwatch.kafka.settings import KafkaSettings, SecuritySettings, client_kwargs
from gapwatch.producer.faults import FaultPlan
from gapwatch.producer.loadgen import LoadgenConfig, run_loadgen
from gapwatch.testing.kafka import KafkaCluster, SecurityPlan
from gapwatch.testing.pytest_plugin import SecuredKafka
from gapwatch.verifier import ConsumerVerifier, VerifierConfig

pytestmark = [pytest.mark.kafka, *IGNORE_DROPPED_TLS_SOCKETS]

Run = tuple[str, int, int]  # producer, first_seq, last_seq


def unsigned_jwt(subject: str, lifetime_s: int = 3600) -> str:
    """What Kafka's unsecured OAUTHBEARER validator accepts: ``alg: none``, sub, exp."""

    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    return f"{part({'alg': 'none'})}.{part({'sub': subject, 'iat': now, 'exp': now + lifetime_s})}."


def inner_drops(truth: dict[str, Any]) -> set[Run]:
    """Runs of dropped sequences with a sent record before and after: what must be confirmed
    (a tail drop has no later record and ends as unknown fate instead)."""
    runs: set[Run] = set()
    for stream in truth["streams"]:
        dropped = set(stream["dropped"])
        sent = [s for s in range(stream["last_seq"] + 1) if s not in dropped]
        inner = sorted(s for s in dropped if min(sent) < s < max(sent))
        start = None
        for i, seq in enumerate(inner):
            start = seq if start is None else start
            if i + 1 == len(inner) or inner[i + 1] != seq + 1:
                runs.add((stream["producer"], start, seq))
                start = None
    return runs


def confirmed_runs(gaps: list[dict[str, Any]]) -> set[Run]:
    return {
        (g["producer"], g["first_seq"], g["last_seq"]) for g in gaps if g["state"] == "confirmed"
    }


async def run_scenario(
    security: SecuritySettings,
    audit_flags: list[str],
    *,
    bootstrap: str,
    topic: str,
    secrets: list[str],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    # aiokafka logs every request here at DEBUG, the SASL exchange included.
    caplog.set_level(logging.DEBUG, logger=AIOKAFKA_CONNECTION_LOGGER)
    report_topic = f"{topic}-reports"
    truth = await run_loadgen(
        LoadgenConfig(
            bootstrap_servers=bootstrap,
            topics=(topic,),
            partitions=1,
            count=400,
            rate=0,
            producer_prefix="sec",
            faults=FaultPlan(drop=0.04, seed=5),
            report_topic=report_topic,
            report_interval_s=0.5,
            security=security,
        ).validate()
    )
    expected = inner_drops(truth)
    assert expected, "the seed must drop records inside the stream"
    missing = sum(last - first + 1 for _, first, last in expected)

    config = monitor_config(bootstrap, [topic], f"g-{topic}", grace_period=1.0)
    config = dataclasses.replace(
        config,
        kafka=dataclasses.replace(config.kafka, security=security),
        reports=dataclasses.replace(config.reports, enabled=True, topic=report_topic),
    ).validate()
    monitor = await start_monitor(config)
    try:

        async def settled() -> list[dict[str, Any]] | None:
            gaps: list[dict[str, Any]] = (await get_json(monitor, "/gaps", limit=1000))["gaps"]
            is_open = any(g["state"] == "open" for g in gaps)
            return gaps if confirmed_runs(gaps) and not is_open else None

        gaps = await wait_until(settled, within=60.0)
        streams = json.dumps(await get_json(monitor, "/streams"))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{monitor.http_port}") as http:
            metrics = (await http.get("/metrics")).text
    finally:
        await monitor.stop()
    assert confirmed_runs(gaps) == expected
    labels = {"topic": topic, "partition": "0"}
    assert metric_value(metrics, "gapwatch_missing_records_total", **labels) == missing

    argv = ["audit", "--bootstrap-servers", bootstrap, "--topic", topic, "--json", *audit_flags]
    capsys.readouterr()
    code = await asyncio.to_thread(main, argv)
    audit = json.loads(capsys.readouterr().out)
    assert code == 1
    assert confirmed_runs(audit["gaps"]) == expected

    await verify_checkpoint(security, bootstrap=bootstrap, topic=topic)

    for secret in secrets:
        assert secret not in caplog.text
        assert secret not in streams
    assert "Request to" in caplog.text, "aiokafka's DEBUG lines were captured"


async def verify_checkpoint(security: SecuritySettings, *, bootstrap: str, topic: str) -> None:
    """The verifier's own clients (admin, checkpoint writer) work over the same security."""
    kafka = KafkaSettings(bootstrap_servers=tuple(bootstrap.split(",")), security=security)
    group = f"v-{topic}"
    consumer = AIOKafkaConsumer(
        **client_kwargs(kafka, suffix="-app"),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    verifier = ConsumerVerifier(
        consumer,
        VerifierConfig(
            group_id=group,
            bootstrap_servers=bootstrap,
            checkpoint_topic=f"{topic}-verifier",
            security=security,
        ),
        registry=CollectorRegistry(),
    )
    consumer.subscribe([topic], listener=verifier.listener())
    await verifier.start()
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=10_000, max_records=50)
        records = [record for records in batch.values() for record in records]
        assert records
        for record in records:
            verifier.processed(record)
        await verifier.flush()
    finally:
        await verifier.stop()
        await consumer.stop()


MODES = [
    pytest.param(SecurityPlan(mode="ssl"), id="ssl-client-certificate"),
    pytest.param(
        SecurityPlan(mode="sasl_plaintext", sasl_mechanism="SCRAM-SHA-512"),
        id="sasl_plaintext-SCRAM-SHA-512",
    ),
    pytest.param(SecurityPlan(mode="sasl_ssl", sasl_mechanism="PLAIN"), id="sasl_ssl-PLAIN"),
    pytest.param(
        SecurityPlan(mode="sasl_ssl", sasl_mechanism="SCRAM-SHA-256"), id="sasl_ssl-SCRAM-SHA-256"
    ),
    pytest.param(
        SecurityPlan(mode="sasl_ssl", sasl_mechanism="OAUTHBEARER"), id="sasl_ssl-OAUTHBEARER"
    ),
]


def admin_security(
    cluster: KafkaCluster, tmp_path: Path
) -> tuple[SecuritySettings, list[str], list[str]]:
    """The admin's settings as an operator would give them: the password in a file, the
    token from a command. Returns the settings, the same as CLI flags, and the secrets."""
    admin = cluster.client_config()
    values: dict[str, Any] = {"security_protocol": admin.security_protocol}
    secrets: list[str] = []
    if admin.sasl_mechanism == "OAUTHBEARER":
        token = unsigned_jwt("admin")
        values["sasl_mechanism"] = "OAUTHBEARER"
        values["sasl_oauth_token_command"] = shlex.join([sys.executable, "-c", f"print({token!r})"])
        secrets.append(token)
    elif admin.sasl_mechanism is not None:
        assert admin.sasl_username
        assert admin.sasl_password
        password_file = tmp_path / "sasl-password"
        password_file.write_text(admin.sasl_password + "\n")
        values["sasl_mechanism"] = admin.sasl_mechanism
        values["sasl_username"] = admin.sasl_username
        values["sasl_password_file"] = password_file
        secrets.append(admin.sasl_password)
    for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        if getattr(admin, key) is not None:
            values[key] = Path(getattr(admin, key))
    flags = [
        item for key, value in values.items() for item in ("--" + key.replace("_", "-"), str(value))
    ]
    return SecuritySettings(**values), flags, secrets


@pytest.mark.parametrize("plan", MODES)
async def test_loss_is_reported_exactly_over_every_security_mode(
    secured_kafka: SecuredKafka,
    plan: SecurityPlan,
    topic_name: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Mutual TLS, SCRAM and PLAIN (password from a file) and OAUTHBEARER (token from a
    command): every client connects, the injected loss is confirmed exactly, and no secret
    reaches a log line or /streams."""
    cluster = secured_kafka(plan)
    security, flags, secrets = admin_security(cluster, tmp_path)
    await run_scenario(
        security,
        flags,
        bootstrap=cluster.bootstrap_servers,
        topic=topic_name,
        secrets=secrets,
        caplog=caplog,
        capsys=capsys,
    )
