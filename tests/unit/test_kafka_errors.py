"""Explaining Kafka start-up failures in one line (gapwatch.kafka.startup_errors), over
aiokafka's and Python's real exception objects."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl

import pytest
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    IllegalSaslStateError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    UnsupportedSaslMechanismError,
)

from gapwatch.kafka.startup_errors import (
    AIOKAFKA_CLIENT_LOGGER,
    BootstrapFailureLog,
    ConnectionFacts,
    Listener,
    bootstrap_servers,
    describe_failure,
    describe_kafka_error,
    describe_unreachable,
    name_kafka_error,
)
from gapwatch.kafka.topics import explain_code

PLAINTEXT = ConnectionFacts()
SSL = ConnectionFacts(security_protocol="SSL")
SASL_SSL = ConnectionFacts(
    security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="mon"
)


def cert_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    error.verify_code = code
    error.verify_message = message
    error.reason = "CERTIFICATE_VERIFY_FAILED"
    return error


def ssl_error(reason: str) -> ssl.SSLError:
    error = ssl.SSLError(1, f"[SSL: {reason}] {reason.lower()}")
    error.reason = reason
    return error


class TestNameKafkaError:
    def test_a_response_code_is_named_as_kafka_names_it(self) -> None:
        """Error code 3 is UNKNOWN_TOPIC_OR_PARTITION, never "error 3"."""
        assert name_kafka_error(3) == "UNKNOWN_TOPIC_OR_PARTITION"
        assert name_kafka_error(58) == "SASL_AUTHENTICATION_FAILED"
        assert name_kafka_error(TopicAlreadyExistsError.errno) == "TOPIC_ALREADY_EXISTS"

    def test_an_exception_and_its_class_are_named_alike(self) -> None:
        """aiokafka's exception objects and classes carry the same name as their code."""
        assert name_kafka_error(UnknownTopicOrPartitionError()) == "UNKNOWN_TOPIC_OR_PARTITION"
        assert name_kafka_error(GroupAuthorizationFailedError) == "GROUP_AUTHORIZATION_FAILED"

    def test_a_code_aiokafka_does_not_know_is_not_given_a_wrong_name(self) -> None:
        """An unknown code is said to be unknown rather than called UNKNOWN_SERVER_ERROR."""
        assert name_kafka_error(9999) == "an error code aiokafka has no name for"

    def test_other_exceptions_are_named_by_their_class(self) -> None:
        """A non-Kafka error keeps its Python class name."""
        assert name_kafka_error(KafkaConnectionError("closed")) == "KafkaConnectionError"
        assert name_kafka_error(ValueError("x")) == "ValueError"

    def test_description_follows_the_name_without_the_number(self) -> None:
        """describe_kafka_error adds Kafka's own description and no "[Error 3]"."""
        text = describe_kafka_error(3)
        assert text.startswith("UNKNOWN_TOPIC_OR_PARTITION (")
        assert "does not exist" in text
        assert "3" not in text

    def test_a_topic_error_code_is_named_with_the_brokers_message(self) -> None:
        """gapwatch.kafka.topics says a response's code by name, with the broker's message."""
        assert explain_code(36, "Topic 'x' already exists.") == (
            "TOPIC_ALREADY_EXISTS (Topic 'x' already exists.)"
        )
        assert explain_code(29, None).startswith("TOPIC_AUTHORIZATION_FAILED (")


class TestConnectionFacts:
    def test_facts_of_client_arguments_hold_user_and_mechanism_but_no_password(self) -> None:
        """Built from aiokafka arguments, the facts keep what a message names, never the
        password."""
        facts = ConnectionFacts.of(
            {
                "bootstrap_servers": ["b:9092"],
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-256",
                "sasl_plain_username": "mon",
                "sasl_plain_password": "hunter2",
            }
        )
        assert facts == ConnectionFacts(
            security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256", sasl_username="mon"
        )
        assert "hunter2" not in repr(facts)
        assert facts.uses_tls

    def test_without_sasl_no_user_is_named(self) -> None:
        """A PLAINTEXT or SSL client has no SASL mechanism or user to name."""
        facts = ConnectionFacts.of({"security_protocol": "SSL", "sasl_plain_username": "x"})
        assert facts == ConnectionFacts(security_protocol="SSL")
        assert ConnectionFacts.of({}) == PLAINTEXT

    def test_bootstrap_servers_are_read_from_a_list_or_a_string(self) -> None:
        """aiokafka takes both forms; the message lists servers in the given order."""
        assert bootstrap_servers({"bootstrap_servers": "a:1, b:2"}) == ["a:1", "b:2"]
        assert bootstrap_servers({"bootstrap_servers": ["b:2", "a:1"]}) == ["b:2", "a:1"]


class TestDescribeFailure:
    def test_rule_1_failed_authentication_names_mechanism_and_user(self) -> None:
        """The broker's refusal names who failed to log in, and how."""
        error = SaslAuthenticationFailed(
            "Authentication failed during authentication due to invalid credentials with "
            "SASL mechanism SCRAM-SHA-512"
        )
        text = describe_failure(error, facts=SASL_SSL)
        assert text.startswith("authentication failed for user 'mon' with SCRAM-SHA-512 (")
        assert "invalid credentials" in text
        assert "[Error" not in text

    def test_rule_1_a_mechanism_the_broker_does_not_enable(self) -> None:
        """aiokafka's message lists the enabled mechanisms; it is kept."""
        error = UnsupportedSaslMechanismError(
            "Kafka broker does not support SCRAM-SHA-512 sasl mechanism. Enabled mechanisms "
            "are: ['PLAIN']"
        )
        text = describe_failure(error, facts=SASL_SSL)
        assert text.startswith("the broker does not enable SASL mechanism SCRAM-SHA-512")
        assert "['PLAIN']" in text

    def test_rule_1_sasl_against_a_listener_without_sasl(self) -> None:
        """IllegalSaslStateError (aiokafka builds it from the connection) means the listener
        is not a SASL one."""
        error = IllegalSaslStateError(object())
        assert describe_failure(error, facts=SASL_SSL) == (
            "the listener does not expect SASL (security_protocol is SASL_SSL; "
            "is it a PLAINTEXT or SSL listener?)"
        )

    def test_rule_2_unknown_ca(self) -> None:
        """A certificate chain we cannot verify points at ssl_cafile."""
        text = describe_failure(cert_error(20, "unable to get local issuer certificate"), facts=SSL)
        assert text.startswith("TLS certificate not trusted (unable to get local issuer")
        assert "ssl_cafile" in text

    def test_rule_2_name_mismatch(self) -> None:
        """A certificate for another name says so and how to connect instead."""
        text = describe_failure(
            cert_error(62, "Hostname mismatch, certificate is not valid for 'b'."), facts=SSL
        )
        assert text.startswith("TLS certificate does not match the server's address (Hostname")
        assert "ssl_check_hostname" in text

    def test_rule_2_expired(self) -> None:
        """An expired certificate is not blamed on the CA."""
        text = describe_failure(cert_error(10, "certificate has expired"), facts=SSL)
        assert text == "TLS certificate not valid now (certificate has expired)"

    def test_rule_3_tls_against_a_plaintext_listener(self) -> None:
        """OpenSSL's WRONG_VERSION_NUMBER means the other side does not speak TLS."""
        text = describe_failure(ssl_error("WRONG_VERSION_NUMBER"), facts=SSL)
        assert text.startswith("the listener does not speak TLS (security_protocol is SSL;")

    def test_rule_3_client_certificate_refused(self) -> None:
        """An alert from the server about our certificate points at the client key pair."""
        text = describe_failure(ssl_error("TLSV13_ALERT_CERTIFICATE_REQUIRED"), facts=SSL)
        assert text.startswith("the server refused our TLS client certificate")
        assert "ssl_certfile" in text

    def test_rule_3_other_handshake_failures_keep_openssls_reason(self) -> None:
        """Anything else in the handshake is named by OpenSSL's reason."""
        text = describe_failure(ssl_error("NO_SHARED_CIPHER"), facts=SSL)
        assert text == "TLS handshake failed (NO_SHARED_CIPHER)"

    @pytest.mark.parametrize(
        "error",
        [
            ConnectionResetError(),
            KafkaConnectionError("Connection at 127.0.0.1:9092 closed"),
            asyncio.IncompleteReadError(b"", 4),
            ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),
        ],
    )
    def test_rule_4_a_closed_connection_is_named_by_the_probe(self, error: BaseException) -> None:
        """When the server only hung up, the TLS probe's answer names the mismatch."""
        assert describe_failure(error, facts=SSL, listener=Listener.PLAIN).startswith(
            "the listener does not speak TLS"
        )
        assert describe_failure(error, facts=PLAINTEXT, listener=Listener.TLS) == (
            "the listener expects TLS: set security_protocol to SSL or SASL_SSL (it is PLAINTEXT)"
        )
        assert describe_failure(error, facts=PLAINTEXT, listener=Listener.PLAIN) == (
            "connection closed by the server (does the listener require SASL? "
            "security_protocol is PLAINTEXT)"
        )
        assert describe_failure(error, facts=SSL) == "connection closed during the TLS handshake"
        assert describe_failure(error, facts=SSL, listener=Listener.TLS) == (
            "the server closed the connection after the TLS handshake (does the listener "
            "require SASL? security_protocol is SSL)"
        )
        assert describe_failure(error, facts=SASL_SSL, listener=Listener.TLS) == (
            "the server closed the connection after the TLS handshake"
        )
        assert describe_failure(
            error, facts=SSL, listener=Listener.TLS_WANTS_CLIENT_CERT
        ).startswith("the listener wants a TLS client certificate it trusts")

    def test_rule_5_tcp_and_dns(self) -> None:
        """Refused, unresolved and timed-out servers are told apart."""
        refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)")
        assert describe_failure(refused, facts=PLAINTEXT) == "connection refused"
        unresolved = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        assert describe_failure(unresolved, facts=PLAINTEXT) == (
            "host name not resolved (Name or service not known)"
        )
        assert describe_failure(TimeoutError(), facts=PLAINTEXT) == "timed out"
        unreachable = OSError(113, "No route to host")
        assert describe_failure(unreachable, facts=PLAINTEXT) == "No route to host"

    def test_rule_6_other_kafka_errors_by_name(self) -> None:
        """A Kafka error with no rule of its own is named, never numbered."""
        text = describe_failure(GroupAuthorizationFailedError(), facts=PLAINTEXT)
        assert text.startswith("GROUP_AUTHORIZATION_FAILED (")
        assert "30" not in text


class TestDescribeUnreachable:
    def test_every_server_is_named_in_order_with_its_cause(self) -> None:
        """One line: each bootstrap server and why it failed; one never tried says so."""
        text = describe_unreachable(
            ["b1:9092", "b2:9092", "b3:9092"],
            {
                "b2:9092": socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
                "b1:9092": ConnectionRefusedError(111, "refused"),
            },
            facts=PLAINTEXT,
        )
        assert text == (
            "cannot connect to Kafka: b1:9092: connection refused; "
            "b2:9092: host name not resolved (Name or service not known); "
            "b3:9092: no answer recorded"
        )
        assert "\n" not in text


class TestBootstrapFailureLog:
    def _log_failure(self, logger: logging.Logger, port: int) -> None:
        # The call aiokafka's bootstrap makes (aiokafka/client.py, 0.14).
        logger.error(
            'Unable connect to "%s:%s": %s', "127.0.0.1", port, ConnectionRefusedError(111, "x")
        )

    def test_per_server_causes_are_collected_and_held_back(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """While installed, aiokafka's per-server failures are kept, not printed."""
        logger = logging.getLogger(AIOKAFKA_CLIENT_LOGGER)
        capture = BootstrapFailureLog()
        logger.addFilter(capture)
        try:
            with caplog.at_level(logging.DEBUG, logger=AIOKAFKA_CLIENT_LOGGER):
                self._log_failure(logger, 1)
                self._log_failure(logger, 2)
                logger.info("Authenticated as %s via %s", "mon", "PLAIN")
        finally:
            logger.removeFilter(capture)
        assert sorted(capture.failures) == ["127.0.0.1:1", "127.0.0.1:2"]
        assert isinstance(capture.failures["127.0.0.1:1"], ConnectionRefusedError)
        assert [r.getMessage() for r in caplog.records] == ["Authenticated as mon via PLAIN"]

    def test_held_records_are_logged_after_all_when_released(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A start that succeeded through another server still logs the failed one."""
        logger = logging.getLogger(AIOKAFKA_CLIENT_LOGGER)
        capture = BootstrapFailureLog()
        with caplog.at_level(logging.DEBUG, logger=AIOKAFKA_CLIENT_LOGGER):
            logger.addFilter(capture)
            self._log_failure(logger, 1)
            logger.removeFilter(capture)
            assert caplog.records == []
            capture.release(logger)
        assert [r.getMessage() for r in caplog.records] == [
            'Unable connect to "127.0.0.1:1": [Errno 111] x'
        ]

    def test_records_of_other_servers_pass_through(self, caplog: pytest.LogCaptureFixture) -> None:
        """Another client bootstrapping from elsewhere meanwhile keeps its log lines."""
        logger = logging.getLogger(AIOKAFKA_CLIENT_LOGGER)
        capture = BootstrapFailureLog(["127.0.0.1:1"])
        logger.addFilter(capture)
        try:
            with caplog.at_level(logging.DEBUG, logger=AIOKAFKA_CLIENT_LOGGER):
                self._log_failure(logger, 1)
                self._log_failure(logger, 2)
        finally:
            logger.removeFilter(capture)
        assert list(capture.failures) == ["127.0.0.1:1"]
        assert [r.getMessage() for r in caplog.records] == [
            'Unable connect to "127.0.0.1:2": [Errno 111] x'
        ]
