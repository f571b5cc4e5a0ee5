"""Every command ends a failed start with one clear line and a non-zero exit, as a newcomer
would meet it: a mistyped port, a topic that does not exist, the wrong security protocol
for a (real, plaintext) broker. Kafka errors are named, never numbered.

The commands run as the user runs them (``python -m gapwatch ...`` in a subprocess), so the
whole of stderr is checked: one line, no traceback, no password.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from tls_endpoints import closed_port

from gapwatch.errors import KafkaStartupError
from gapwatch.producer import StampedProducer
from gapwatch.testing.kafka import KafkaCluster, SecurityPlan, unsecured_jwt
from gapwatch.testing.pytest_plugin import SecuredKafka
from gapwatch.verifier import ConsumerVerifier, VerifierConfig

pytestmark = pytest.mark.kafka

COMMAND_TIME_LIMIT = 60.0


def run_gapwatch(*argv: str) -> tuple[int, str]:
    """Exit status and stderr of ``gapwatch <argv>``."""
    done = subprocess.run(
        [sys.executable, "-m", "gapwatch", *argv],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIME_LIMIT,
        check=False,
    )
    return done.returncode, done.stderr


def only_line(stderr: str) -> str:
    """stderr's one line (fails if there are more, or a traceback)."""
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr
    assert len(lines) == 1, stderr
    return lines[0]


def monitor(bootstrap: str, *extra: str) -> tuple[int, str]:
    return run_gapwatch("monitor", "--bootstrap-servers", bootstrap, "--http-port", "0", *extra)


class TestMonitor:
    def test_unreachable_cluster_names_the_server_and_why(self) -> None:
        """``gapwatch monitor --bootstrap-servers 127.0.0.1:<closed>`` fails in one line."""
        port = closed_port()
        code, stderr = monitor(f"127.0.0.1:{port}", "--topic", "x")
        assert code == 1
        assert only_line(stderr) == (
            f"gapwatch monitor: cannot connect to Kafka: 127.0.0.1:{port}: connection refused"
        )

    def test_missing_topic_is_named(self, kafka: KafkaCluster) -> None:
        """A watched topic that does not exist is named, with Kafka's name of the error."""
        code, stderr = monitor(kafka.bootstrap_servers, "--topic", "no-such-topic")
        assert code == 1
        assert only_line(stderr) == (
            "gapwatch monitor: topic 'no-such-topic' does not exist (UNKNOWN_TOPIC_OR_PARTITION)"
        )

    def test_tls_client_against_a_plaintext_broker(self, kafka: KafkaCluster) -> None:
        """security_protocol SSL against the plaintext listener: the line says so."""
        code, stderr = monitor(
            kafka.bootstrap_servers, "--topic", "x", "--security-protocol", "SSL"
        )
        assert code == 1
        assert only_line(stderr) == (
            f"gapwatch monitor: cannot connect to Kafka: {kafka.bootstrap_servers}: the "
            "listener does not speak TLS (security_protocol is SSL; is it a PLAINTEXT or "
            "SASL_PLAINTEXT listener?)"
        )

    def test_sasl_client_against_a_plaintext_broker_never_shows_the_password(
        self, kafka: KafkaCluster
    ) -> None:
        """SASL against a listener without SASL is named; the password appears nowhere."""
        code, stderr = monitor(
            kafka.bootstrap_servers,
            "--topic",
            "x",
            "--security-protocol",
            "SASL_PLAINTEXT",
            "--sasl-mechanism",
            "SCRAM-SHA-512",
            "--sasl-username",
            "mon",
            "--sasl-password",
            "pw-not-shown",
        )
        assert code == 1
        assert only_line(stderr) == (
            f"gapwatch monitor: cannot connect to Kafka: {kafka.bootstrap_servers}: the "
            "listener does not expect SASL (security_protocol is SASL_PLAINTEXT; is it a "
            "PLAINTEXT or SSL listener?)"
        )
        assert "pw-not-shown" not in stderr


class TestOtherCommands:
    def test_audit_unreachable_and_missing_topic(self, kafka: KafkaCluster) -> None:
        """``gapwatch audit`` exits 2 (could not run) with one line for either."""
        port = closed_port()
        code, stderr = run_gapwatch(
            "audit", "--bootstrap-servers", f"127.0.0.1:{port}", "--topic", "x"
        )
        assert code == 2
        assert only_line(stderr) == (
            f"gapwatch audit: cannot connect to Kafka: 127.0.0.1:{port}: connection refused"
        )
        code, stderr = run_gapwatch(
            "audit", "--bootstrap-servers", kafka.bootstrap_servers, "--topic", "no-such-topic"
        )
        assert code == 2
        assert only_line(stderr) == (
            "gapwatch audit: topic 'no-such-topic' does not exist or has no partitions"
        )

    def test_loadgen_missing_topic_is_named_at_once(self, kafka: KafkaCluster) -> None:
        """Without --partitions a missing topic is named before anything is sent."""
        code, stderr = run_gapwatch(
            "loadgen",
            "--bootstrap-servers",
            kafka.bootstrap_servers,
            "--topic",
            "no-such-topic",
            "--count",
            "1",
        )
        assert code == 1
        assert "Traceback" not in stderr
        assert stderr.strip().splitlines()[-1] == (
            "gapwatch loadgen: topic 'no-such-topic' does not exist "
            "(UNKNOWN_TOPIC_OR_PARTITION): create it, or pass --partitions to have it created"
        )

    def test_loadgen_unreachable(self) -> None:
        """The load generator's producers fail their start in one line."""
        port = closed_port()
        code, stderr = run_gapwatch(
            "loadgen",
            "--bootstrap-servers",
            f"127.0.0.1:{port}",
            "--partitions",
            "1",
            "--count",
            "1",
        )
        assert code == 1
        assert stderr.strip().splitlines()[-1] == (
            f"gapwatch loadgen: cannot connect to Kafka: 127.0.0.1:{port}: connection refused"
        )

    def test_gaps_unreachable_monitor(self) -> None:
        """``gapwatch gaps`` against a closed port says the monitor cannot be reached."""
        port = closed_port()
        code, stderr = run_gapwatch("gaps", "--url", f"http://127.0.0.1:{port}")
        assert code == 2
        assert only_line(stderr) == (
            f"gapwatch gaps: cannot reach http://127.0.0.1:{port}: connection refused"
        )


class TestLibraryStarts:
    async def test_stamped_producer_start_raises_one_line(self) -> None:
        """``StampedProducer.start`` raises KafkaStartupError naming the server."""
        port = closed_port()
        producer = StampedProducer(bootstrap_servers=f"127.0.0.1:{port}", producer_id="p")
        with pytest.raises(KafkaStartupError) as raised:
            await producer.start()
        await producer.stop(final_report=False)
        assert str(raised.value) == (
            f"cannot connect to Kafka: 127.0.0.1:{port}: connection refused"
        )

    async def test_consumer_verifier_start_raises_one_line(self, kafka: KafkaCluster) -> None:
        """``ConsumerVerifier.start`` raises KafkaStartupError naming the server."""
        port = closed_port()
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers)
        verifier = ConsumerVerifier(
            consumer,
            VerifierConfig(group_id="g", bootstrap_servers=f"127.0.0.1:{port}", timeout=10.0),
            registry=None,
        )
        try:
            with pytest.raises(KafkaStartupError) as raised:
                await verifier.start()
        finally:
            await consumer.stop()
        assert str(raised.value) == (
            f"cannot connect to Kafka: 127.0.0.1:{port}: connection refused"
        )


SCRAM_PLAN = SecurityPlan(mode="sasl_plaintext", sasl_mechanism="SCRAM-SHA-512")
MUTUAL_TLS_PLAN = SecurityPlan(mode="ssl")
OAUTH_PLAN = SecurityPlan(mode="sasl_ssl", sasl_mechanism="OAUTHBEARER")


class TestSecuredCluster:
    """The same one line against real secured brokers: a refused password, an unknown CA."""

    def test_wrong_password_names_user_and_mechanism_never_the_password(
        self, secured_kafka: SecuredKafka
    ) -> None:
        """A SCRAM login with the wrong password ends in one line naming the user and the
        mechanism; neither the wrong nor the right password appears anywhere."""
        cluster = secured_kafka(SCRAM_PLAN)
        admin = cluster.client_config()
        wrong = "not-the-password-0123"
        code, stderr = monitor(
            cluster.bootstrap_servers,
            "--topic",
            "x",
            "--security-protocol",
            "SASL_PLAINTEXT",
            "--sasl-mechanism",
            "SCRAM-SHA-512",
            "--sasl-username",
            "admin",
            "--sasl-password",
            wrong,
        )
        assert code == 1
        line = only_line(stderr)
        assert line.startswith(
            f"gapwatch monitor: cannot connect to Kafka: {cluster.bootstrap_servers}: "
            "authentication failed for user 'admin' with SCRAM-SHA-512"
        ), line
        assert wrong not in stderr
        assert admin.sasl_password is not None
        assert admin.sasl_password not in stderr

    def test_unknown_ca_says_which_setting_to_give(self, secured_kafka: SecuredKafka) -> None:
        """A TLS client that does not trust the cluster's CA (no ``--ssl-cafile``) ends in one
        line saying the certificate is not trusted and naming ``ssl_cafile``."""
        cluster = secured_kafka(MUTUAL_TLS_PLAN)
        admin = cluster.client_config()
        assert admin.ssl_certfile is not None
        assert admin.ssl_keyfile is not None
        code, stderr = monitor(
            cluster.bootstrap_servers,
            "--topic",
            "x",
            "--security-protocol",
            "SSL",
            "--ssl-certfile",
            admin.ssl_certfile,
            "--ssl-keyfile",
            admin.ssl_keyfile,
        )
        assert code == 1
        line = only_line(stderr)
        assert line.startswith(
            f"gapwatch monitor: cannot connect to Kafka: {cluster.bootstrap_servers}: "
            "TLS certificate not trusted"
        ), line
        assert "unknown CA, set ssl_cafile" in line

    def test_refused_oauthbearer_token_is_named(
        self, secured_kafka: SecuredKafka, tmp_path: Path
    ) -> None:
        """An expired OAUTHBEARER token (aiokafka does not report the broker's refusal) ends
        the start with a line saying the token was most likely refused."""
        cluster = secured_kafka(OAUTH_PLAN)
        admin = cluster.client_config()
        assert admin.ssl_cafile is not None
        token_file = tmp_path / "expired.jwt"
        token_file.write_text(
            unsecured_jwt("admin", issued_at=int(time.time()) - 7200, lifetime_s=60)
        )
        code, stderr = monitor(
            cluster.bootstrap_servers,
            "--topic",
            "x",
            "--security-protocol",
            "SASL_SSL",
            "--sasl-mechanism",
            "OAUTHBEARER",
            "--ssl-cafile",
            admin.ssl_cafile,
            "--sasl-oauth-token-file",
            str(token_file),
        )
        assert code == 1
        assert "Traceback" not in stderr
        assert stderr.strip().splitlines()[-1] == (
            "gapwatch monitor: cannot connect to Kafka: the brokers answered no request after "
            "the OAUTHBEARER login, so the token was most likely refused (expired, or not "
            "accepted by the broker's validator; aiokafka does not report the refusal itself)"
        )
