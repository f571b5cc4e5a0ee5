"""The test bed's secured clusters, on real one-node brokers, one cluster per mode.

For each mode: the admin's ``client.json``, read the way the monitor reads its config and
turned into aiokafka arguments by gapwatch's own ``client_kwargs``, writes and reads a
record; a wrong secret or an unknown CA is refused; with the authorizer on, a user without
ACLs is refused. The CLI's ``client.properties`` is checked with librdkafka.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import AbstractTokenProvider
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from aiokafka.helpers import create_ssl_context
from security_support import IGNORE_DROPPED_TLS_SOCKETS

from gapwatch.kafka.settings import client_kwargs
from gapwatch.monitor.config_sources import load_config
from gapwatch.testing._certs import CertificateAuthority
from gapwatch.testing.kafka import (
    CLIENT_JSON,
    KafkaCluster,
    SecurityPlan,
    UnsecuredTokenProvider,
    User,
    unsecured_jwt,
)
from gapwatch.testing.pytest_plugin import MakeTopic, SecuredKafka

pytestmark = [pytest.mark.kafka, *IGNORE_DROPPED_TLS_SOCKETS]

MON = User("mon", "mon-secret")
PLANS = [
    pytest.param(
        SecurityPlan(mode="ssl", users=(MON,), has_authorizer=True), id="ssl-client-certificates"
    ),
    pytest.param(
        SecurityPlan(
            mode="sasl_plaintext",
            sasl_mechanism="SCRAM-SHA-512",
            users=(MON,),
            has_authorizer=True,
        ),
        id="sasl_plaintext-SCRAM-SHA-512",
    ),
    pytest.param(
        SecurityPlan(mode="sasl_ssl", sasl_mechanism="PLAIN", users=(MON,), has_authorizer=True),
        id="sasl_ssl-PLAIN",
    ),
    pytest.param(
        SecurityPlan(
            mode="sasl_ssl", sasl_mechanism="SCRAM-SHA-256", users=(MON,), has_authorizer=True
        ),
        id="sasl_ssl-SCRAM-SHA-256",
    ),
    pytest.param(
        SecurityPlan(
            mode="sasl_ssl", sasl_mechanism="OAUTHBEARER", users=(MON,), has_authorizer=True
        ),
        id="sasl_ssl-OAUTHBEARER",
    ),
]
_WAIT_S = 30.0


@pytest.fixture(scope="module", params=PLANS)
def plan(request: pytest.FixtureRequest) -> SecurityPlan:
    """One security mode; module scope makes pytest run all tests of one mode together."""
    security: SecurityPlan = request.param
    return security


@pytest.fixture
def cluster(secured_kafka: SecuredKafka, plan: SecurityPlan) -> KafkaCluster:
    """The one-node cluster secured by ``plan``, started on first use."""
    return secured_kafka(plan)


def monitor_client_kwargs(cluster: KafkaCluster, tmp_path: Path) -> dict[str, Any]:
    """aiokafka arguments from ``client.json`` as ``gapwatch monitor --config`` builds them.

    gapwatch's configuration does not know OAUTHBEARER yet (its ``sasl_mechanism`` choices
    and ``client_kwargs`` stop at SCRAM), so for that mechanism the TLS part comes from
    gapwatch and the token provider is added here.
    """
    settings: dict[str, str] = json.loads(cluster.client_json_path.read_text())
    token_subject = None
    if settings.get("sasl_mechanism") == "OAUTHBEARER":
        token_subject = settings.pop("sasl_username")
        del settings["sasl_mechanism"]
        settings["security_protocol"] = "SSL"
    config_path = tmp_path / CLIENT_JSON
    config_path.write_text(json.dumps(settings))
    config = load_config({"config": str(config_path), "topic": "unused"}, {})
    kwargs = client_kwargs(config.kafka)
    if token_subject is not None:
        kwargs["security_protocol"] = "SASL_SSL"
        kwargs["sasl_mechanism"] = "OAUTHBEARER"
        kwargs["sasl_oauth_token_provider"] = UnsecuredTokenProvider(token_subject)
    return kwargs


@asynccontextmanager
async def started_producer(**kwargs: Any) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer, always stopped again."""
    producer = AIOKafkaProducer(request_timeout_ms=10_000, **kwargs)
    try:
        await producer.start()
        yield producer
    finally:
        await producer.stop()


class _ExpiredTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    async def token(self) -> str:
        return unsecured_jwt("admin", issued_at=int(time.time()) - 7200, lifetime_s=60)


def refused_variants(cluster: KafkaCluster, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """aiokafka arguments, each the admin's with one thing wrong, that the plan must refuse."""
    plan = cluster.security
    admin = cluster.client_config().aiokafka_options()
    variants: dict[str, dict[str, Any]] = {}
    if plan.uses_sasl and not plan.uses_oauthbearer:
        variants["wrong password"] = {**admin, "sasl_plain_password": "not-the-password"}
    if plan.uses_oauthbearer:
        variants["expired token"] = {**admin, "sasl_oauth_token_provider": _ExpiredTokenProvider()}
    config = cluster.client_config()
    if plan.uses_tls:
        # A CA of the same kind that did not sign the broker's certificate.
        other_ca = tmp_path / "other-ca.crt"
        CertificateAuthority.create().write_certificate(other_ca)
        context = create_ssl_context(
            cafile=str(other_ca), certfile=config.ssl_certfile, keyfile=config.ssl_keyfile
        )
        variants["unknown CA"] = {**admin, "ssl_context": context}
    if plan.uses_client_certificates:
        context = create_ssl_context(cafile=config.ssl_cafile)
        variants["no client certificate"] = {**admin, "ssl_context": context}
    return variants


async def write_error(
    cluster: KafkaCluster, topic: str, kwargs: Mapping[str, Any]
) -> KafkaError | None:
    """The error a producer with ``kwargs`` meets starting and writing one record, if any.

    Most refusals fail ``start()``. A refused OAUTHBEARER token does not: aiokafka 0.14
    takes the broker's error challenge for success, and only the write then fails (the
    broker closed the connection, so no metadata ever arrives).
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=cluster.bootstrap_servers, request_timeout_ms=5_000, **kwargs
    )
    try:
        await asyncio.wait_for(producer.start(), _WAIT_S)
        await asyncio.wait_for(producer.send_and_wait(topic, b"x"), _WAIT_S)
    except KafkaError as exc:
        return exc
    finally:
        await producer.stop()
    return None


class TestSecuredCluster:
    async def test_admin_writes_and_reads_with_gapwatch_client_settings(
        self, cluster: KafkaCluster, make_topic: MakeTopic, tmp_path: Path
    ) -> None:
        """client.json, loaded like the monitor's config, produces and consumes a record."""
        topic = await make_topic(cluster, partitions=1)
        kwargs = monitor_client_kwargs(cluster, tmp_path)
        async with started_producer(**kwargs) as producer:
            await producer.send_and_wait(topic, b"secured", headers=[("h", b"1")])
        consumer = AIOKafkaConsumer(
            topic, group_id=f"g-{topic}", auto_offset_reset="earliest", **kwargs
        )
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), _WAIT_S)
            await consumer.commit()
        finally:
            await consumer.stop()
        assert record.value == b"secured"
        assert list(record.headers) == [("h", b"1")]

    async def test_wrong_secret_unknown_ca_and_missing_certificate_are_refused(
        self, cluster: KafkaCluster, make_topic: MakeTopic, tmp_path: Path
    ) -> None:
        """Every way of getting the credentials wrong that the mode has is refused: the
        client cannot write to a topic the admin created."""
        topic = await make_topic(cluster, partitions=1)
        variants = refused_variants(cluster, tmp_path)
        assert variants, "every secured mode has something a client can get wrong"
        refusals = {
            what: await write_error(cluster, topic, kwargs) for what, kwargs in variants.items()
        }
        assert [what for what, error in refusals.items() if error is None] == []

    async def test_user_without_acls_is_refused_by_the_authorizer(
        self, cluster: KafkaCluster, make_topic: MakeTopic
    ) -> None:
        """The non-super user authenticates but may not write a topic without an ACL."""
        topic = await make_topic(cluster, partitions=1)
        mon = cluster.client_config(MON.name).aiokafka_options()
        async with started_producer(bootstrap_servers=cluster.bootstrap_servers, **mon) as p:
            with pytest.raises(TopicAuthorizationFailedError):
                await asyncio.wait_for(p.send_and_wait(topic, b"denied"), _WAIT_S)


def _librdkafka_config(path: Path) -> Mapping[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_cli_up_writes_client_files_that_librdkafka_uses(tmp_path: Path) -> None:
    """``up --security sasl_ssl`` writes client.json and a client.properties that
    librdkafka (what ``kcat -F`` reads) connects with; ``down`` stops the node."""
    from confluent_kafka.admin import AdminClient

    state_dir = tmp_path / "cluster"
    command = [sys.executable, "-m", "gapwatch.testing.kafka"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    up = subprocess.run(
        [
            *command,
            "up",
            "--state-dir",
            str(state_dir),
            "--security",
            "sasl_ssl",
            "--sasl-mechanism",
            "SCRAM-SHA-256",
            "--user",
            "mon:mon-secret",
            "--authorizer",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    try:
        assert up.returncode == 0, up.stderr
        bootstrap = up.stdout.strip().splitlines()[-1]
        settings = json.loads((state_dir / CLIENT_JSON).read_text())
        assert settings["bootstrap_servers"] == bootstrap
        assert settings["security_protocol"] == "SASL_SSL"
        assert settings["sasl_mechanism"] == "SCRAM-SHA-256"
        assert settings["sasl_username"] == "admin"
        assert (state_dir / CLIENT_JSON).stat().st_mode & 0o077 == 0
        admin = AdminClient(dict(_librdkafka_config(state_dir / "client.properties")))
        metadata = admin.list_topics(timeout=30)
        assert sorted(metadata.brokers) == [1]
    finally:
        subprocess.run([*command, "down", "--state-dir", str(state_dir)], timeout=60, check=False)
