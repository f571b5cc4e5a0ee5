"""A real aiokafka client started against real local endpoints that are not a usable Kafka
listener ends with one line saying why (gapwatch.kafka.startup_errors.explained_start).

No Kafka needed: closed ports, and listeners on 127.0.0.1 (plain or TLS, with certificates
from a throwaway CA) that read and hang up, as a Kafka listener of the other kind does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupAuthorizationFailedError
from aiokafka.helpers import create_ssl_context
from tls_endpoints import (
    Certificates,
    closed_port,
    closing_listener,
    make_certificates,
    server_context,
)

from gapwatch.errors import KafkaStartupError
from gapwatch.kafka.startup_errors import AIOKAFKA_CLIENT_LOGGER, explained_start

# Bounds every connection attempt: aiokafka's default would wait 40 s for a silent server.
REQUEST_TIMEOUT_MS = 5000


async def start_error(client_kwargs: Mapping[str, Any]) -> str:
    """The one line a client started with ``client_kwargs`` fails with."""
    admin = AIOKafkaAdminClient(**client_kwargs, request_timeout_ms=REQUEST_TIMEOUT_MS)
    try:
        with pytest.raises(KafkaStartupError) as raised:
            async with explained_start(client_kwargs, probe_timeout=2.0):
                await admin.start()
    finally:
        await admin.close()
    text = str(raised.value)
    assert "\n" not in text
    return text


@pytest.fixture(scope="module")
def ip_certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A certificate for 127.0.0.1, as the test bed's brokers have."""
    return make_certificates(tmp_path_factory.mktemp("ip"), dns_name=None, ip="127.0.0.1")


@pytest.fixture(scope="module")
def other_name_certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A certificate for a name that is not the address the client connects to."""
    return make_certificates(tmp_path_factory.mktemp("name"), dns_name="kafka.example", ip=None)


class TestUnreachable:
    async def test_each_server_is_named_with_its_cause(self) -> None:
        """Two closed ports: both are named, in order, as refused."""
        first, second = closed_port(), closed_port()
        text = await start_error({"bootstrap_servers": f"127.0.0.1:{first},127.0.0.1:{second}"})
        assert text == (
            f"cannot connect to Kafka: 127.0.0.1:{first}: connection refused; "
            f"127.0.0.1:{second}: connection refused"
        )


class TestWrongProtocol:
    async def test_tls_client_against_a_plaintext_listener(self) -> None:
        """SSL against a listener that is not TLS: the probe tells it does not speak TLS."""
        async with closing_listener() as port:
            text = await start_error(
                {
                    "bootstrap_servers": f"127.0.0.1:{port}",
                    "security_protocol": "SSL",
                    "ssl_context": create_ssl_context(),
                }
            )
        assert text == (
            f"cannot connect to Kafka: 127.0.0.1:{port}: the listener does not speak TLS "
            "(security_protocol is SSL; is it a PLAINTEXT or SASL_PLAINTEXT listener?)"
        )

    async def test_plaintext_client_against_a_tls_listener(self, ip_certs: Certificates) -> None:
        """PLAINTEXT against a TLS listener: the server hangs up, the probe finds TLS."""
        async with closing_listener(server_context(ip_certs)) as port:
            text = await start_error({"bootstrap_servers": f"127.0.0.1:{port}"})
        assert text == (
            f"cannot connect to Kafka: 127.0.0.1:{port}: the listener expects TLS: set "
            "security_protocol to SSL or SASL_SSL (it is PLAINTEXT)"
        )


class TestCertificates:
    async def test_unknown_ca(self, ip_certs: Certificates) -> None:
        """A broker certificate signed by a CA the client was not given."""
        async with closing_listener(server_context(ip_certs)) as port:
            text = await start_error(
                {
                    "bootstrap_servers": f"127.0.0.1:{port}",
                    "security_protocol": "SSL",
                    "ssl_context": create_ssl_context(),
                }
            )
        assert text.startswith(
            f"cannot connect to Kafka: 127.0.0.1:{port}: TLS certificate not trusted ("
        )
        assert "unknown CA, set ssl_cafile" in text

    async def test_hostname_mismatch(self, other_name_certs: Certificates) -> None:
        """The CA is trusted but the certificate is for another name than 127.0.0.1."""
        async with closing_listener(server_context(other_name_certs)) as port:
            text = await start_error(
                {
                    "bootstrap_servers": f"127.0.0.1:{port}",
                    "security_protocol": "SSL",
                    "ssl_context": create_ssl_context(cafile=str(other_name_certs.ca)),
                }
            )
        assert text.startswith(
            f"cannot connect to Kafka: 127.0.0.1:{port}: TLS certificate does not match the "
            "server's address (IP address mismatch"
        )

    async def test_sasl_over_tls_never_shows_the_password(self, ip_certs: Certificates) -> None:
        """A SASL_SSL client's failure line holds neither the password nor its length."""
        async with closing_listener(server_context(ip_certs)) as port:
            text = await start_error(
                {
                    "bootstrap_servers": f"127.0.0.1:{port}",
                    "security_protocol": "SASL_SSL",
                    "ssl_context": create_ssl_context(),
                    "sasl_mechanism": "SCRAM-SHA-512",
                    "sasl_plain_username": "mon",
                    "sasl_plain_password": "s3cret-pw",
                }
            )
        assert "TLS certificate not trusted" in text
        assert "s3cret" not in text


class TestSuccessfulStartIsUntouched:
    async def test_exceptions_that_are_not_kafkas_pass_unchanged(self) -> None:
        """Only Kafka errors are explained; a bug in the caller stays a bug."""
        with pytest.raises(ZeroDivisionError):
            async with explained_start({"bootstrap_servers": "127.0.0.1:1"}):
                _ = 1 / 0


class TestClientCertificate:
    async def test_missing_client_certificate_refused_by_the_server(
        self, ip_certs: Certificates
    ) -> None:
        """Mutual TLS: a client without a certificate is refused by the listener."""
        context = server_context(ip_certs, require_client_cert=True)
        async with closing_listener(context) as port:
            text = await start_error(
                {
                    "bootstrap_servers": f"127.0.0.1:{port}",
                    "security_protocol": "SSL",
                    "ssl_context": create_ssl_context(cafile=str(ip_certs.ca)),
                }
            )
        assert text == (
            f"cannot connect to Kafka: 127.0.0.1:{port}: the listener wants a TLS client "
            "certificate it trusts: set ssl_certfile/ssl_keyfile to one signed by a CA the "
            "broker trusts"
        )


async def fail_after_skipping_a_server() -> None:
    """A start that skipped a refused server, reached another, then met a Kafka error."""
    async with explained_start({"bootstrap_servers": "127.0.0.1:1,127.0.0.1:2"}):
        logging.getLogger(AIOKAFKA_CLIENT_LOGGER).error(
            'Unable connect to "%s:%s": %s', "127.0.0.1", 1, ConnectionRefusedError()
        )
        raise GroupAuthorizationFailedError()


class TestKafkaErrorsAfterConnecting:
    async def test_a_kafka_error_after_bootstrap_is_named_not_blamed_on_servers(self) -> None:
        """A Kafka error that is not a failed bootstrap is named as such, even if a server
        was skipped on the way (its logged cause does not explain the error)."""
        with pytest.raises(KafkaStartupError) as raised:
            await fail_after_skipping_a_server()
        assert str(raised.value).startswith(
            "Kafka refused to start the client: GROUP_AUTHORIZATION_FAILED ("
        )
