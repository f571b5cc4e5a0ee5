"""Why a Kafka client could not start, said in one line: each server tried and its cause.

aiokafka's bootstrap (``AIOKafkaClient.bootstrap``, aiokafka 0.14) tries every bootstrap
server, logs the real cause per server on the ``aiokafka`` logger (refused, DNS, TLS,
SASL) and then raises a generic ``KafkaConnectionError("Unable to bootstrap from ...")``.
:func:`explained_start` collects those per-server causes from aiokafka's log records while
a client starts and turns a failed start into one :class:`~gapwatch.errors.KafkaStartupError`
line. Where the cause is ambiguous (the server just closed the connection), a direct probe
asks whether the listener speaks TLS, which tells a wrong ``security_protocol`` apart.

The rules that turn one server's failure into words (:func:`describe_failure`), first match
wins:

1. SASL: authentication refused (naming mechanism and user, never the password), a
   mechanism the broker does not enable, a listener that does not expect SASL.
2. TLS certificate not accepted by us: unknown CA, name mismatch, expired.
3. TLS handshake failed: a listener that does not speak TLS, our client certificate
   refused, anything else by OpenSSL's reason.
4. The server closed the connection: the probe's answer names the listener's kind (not
   TLS, TLS, TLS wanting a client certificate) and so the mismatch.
5. TCP: connection refused, host name not resolved, timed out, other OS errors.
6. Any other Kafka error, by Kafka's name (:func:`name_kafka_error`), never its number.

After start-up nothing here is installed: outages are the consumer loop's business.

Checked against aiokafka 0.14.0 (``pyproject.toml`` pins ``>=0.14,<0.15``): the bootstrap
logs ``'Unable connect to "%s:%s": %s'`` and ``'Unable to request metadata from "%s:%s":
%s'`` with ``(host, port, exception)`` as the record's arguments, on the logger named
``aiokafka``. Only that shape is relied on, not the wording; a new aiokafka minor version
must be checked again here (``tests/unit/test_kafka_errors_endpoints.py`` fails if the
causes stop arriving).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aiokafka.errors import (
    BrokerResponseError,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
    for_code,
    kafka_errors,
)

from gapwatch.errors import KafkaStartupError

# aiokafka's client logs bootstrap failures on this logger (``aiokafka/client.py``).
AIOKAFKA_CLIENT_LOGGER: Final = "aiokafka"
PROBE_TIMEOUT: Final = 3.0
# How long the probe waits after its handshake for a server's "certificate required" alert.
CLIENT_CERT_ALERT_WAIT: Final = 0.5

# OpenSSL verification codes (x509_vfy.h) that mean "not the name in the certificate".
_NAME_MISMATCH_CODES: Final = frozenset((62, 63, 64))  # host name, email, IP address
_EXPIRED_CODES: Final = frozenset((9, 10))  # not yet valid, expired
# OpenSSL reasons seen when a TLS client talks to a listener that is not TLS.
_NOT_TLS_REASONS: Final = frozenset(
    ("WRONG_VERSION_NUMBER", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE", "HTTP_REQUEST")
)
# Alerts the server sends when it refuses our client certificate (mutual TLS).
_CLIENT_CERT_REFUSED_REASONS: Final = frozenset(
    (
        "TLSV1_ALERT_UNKNOWN_CA",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "TLSV1_ALERT_ACCESS_DENIED",
    )
)


class Listener(enum.Enum):
    """What a direct probe found listening at a server (:func:`probe_listener`)."""

    UNREACHABLE = "unreachable"
    PLAIN = "plain"  # TCP works, a TLS handshake does not: PLAINTEXT or SASL_PLAINTEXT
    TLS = "tls"
    # The handshake completed, then the server refused a client without a certificate
    # (TLS 1.3 reports client certificate checks after the client's side is done).
    TLS_WANTS_CLIENT_CERT = "tls-wants-client-cert"


@dataclass(frozen=True, slots=True)
class ConnectionFacts:
    """What a failure's description needs to know about how the client connected.

    Holds no password: nothing built from it can leak one.
    """

    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None

    @classmethod
    def of(cls, client_kwargs: Mapping[str, Any]) -> ConnectionFacts:
        """The facts of aiokafka constructor arguments (as ``client_kwargs`` builds them)."""
        protocol = str(client_kwargs.get("security_protocol", "PLAINTEXT"))
        uses_sasl = protocol.startswith("SASL_")
        return cls(
            security_protocol=protocol,
            sasl_mechanism=str(client_kwargs.get("sasl_mechanism", "PLAIN")) if uses_sasl else None,
            sasl_username=client_kwargs.get("sasl_plain_username") if uses_sasl else None,
        )

    @property
    def uses_tls(self) -> bool:
        """Whether the client speaks TLS to the listener."""
        return self.security_protocol in ("SSL", "SASL_SSL")


def name_kafka_error(error: BaseException | type[BaseException] | int) -> str:
    """Kafka's own name of an error (``UNKNOWN_TOPIC_OR_PARTITION``), from an exception, its
    class or a response's error code; other exceptions by their class name."""
    if isinstance(error, int):
        if error not in kafka_errors:
            return "an error code aiokafka has no name for"
        return str(for_code(error).message)
    cls = error if isinstance(error, type) else type(error)
    if issubclass(cls, BrokerResponseError):
        return str(getattr(cls, "message", cls.__name__))
    return cls.__name__


def describe_kafka_error(error: BaseException | type[BaseException] | int) -> str:
    """The name and Kafka's description of an error, e.g. ``UNKNOWN_TOPIC_OR_PARTITION (This
    request is for a topic or partition that does not exist on this broker.)``."""
    cls: type[BaseException] | None
    if isinstance(error, int):
        cls = for_code(error)
    else:
        cls = error if isinstance(error, type) else type(error)
    name = name_kafka_error(error)
    description = getattr(cls, "description", "") if cls is not None else ""
    return f"{name} ({description})" if description else name


def describe_failure(
    error: BaseException, *, facts: ConnectionFacts, listener: Listener | None = None
) -> str:
    """Why one server refused the client, in a few words (rules in the module docstring).

    ``listener`` is the probe's answer (:func:`probe_listener`), when there was one: it names
    the listener's protocol when the server only closed the connection.
    """
    protocol = facts.security_protocol
    # Rule 1: SASL.
    if isinstance(error, SaslAuthenticationFailed):
        detail = _server_message(error)
        return (
            f"authentication failed for user {facts.sasl_username!r} with {facts.sasl_mechanism}"
            + (f" ({detail})" if detail else "")
        )
    if isinstance(error, UnsupportedSaslMechanismError):
        detail = _server_message(error)
        return f"the broker does not enable SASL mechanism {facts.sasl_mechanism}" + (
            f" ({detail})" if detail else ""
        )
    if isinstance(error, IllegalSaslStateError):
        return (
            f"the listener does not expect SASL (security_protocol is {protocol}; "
            "is it a PLAINTEXT or SSL listener?)"
        )
    # Rule 2: we do not accept the server's certificate.
    if isinstance(error, ssl.SSLCertVerificationError):
        message = error.verify_message or error.reason or str(error)
        if error.verify_code in _NAME_MISMATCH_CODES:
            return (
                f"TLS certificate does not match the server's address ({message}); connect "
                "by a name the certificate holds, or turn ssl_check_hostname off"
            )
        if error.verify_code in _EXPIRED_CODES:
            return f"TLS certificate not valid now ({message})"
        return (
            f"TLS certificate not trusted ({message}): unknown CA, set ssl_cafile to the CA "
            "that signed the broker certificates"
        )
    # Rule 3: the handshake itself failed.
    if isinstance(error, ssl.SSLError) and not isinstance(error, ssl.SSLEOFError):
        reason = error.reason or ""
        if reason in _NOT_TLS_REASONS:
            return _not_tls(protocol)
        if reason in _CLIENT_CERT_REFUSED_REASONS:
            return (
                f"the server refused our TLS client certificate ({reason}): check "
                "ssl_certfile/ssl_keyfile and that the broker trusts their CA"
            )
        return f"TLS handshake failed ({reason or error})"
    # Rule 4: the server closed the connection.
    if _is_closed_connection(error):
        if facts.uses_tls:
            if listener is Listener.PLAIN:
                return _not_tls(protocol)
            if listener is Listener.TLS_WANTS_CLIENT_CERT:
                return (
                    "the listener wants a TLS client certificate it trusts: set "
                    "ssl_certfile/ssl_keyfile to one signed by a CA the broker trusts"
                )
            if listener is Listener.TLS and not protocol.startswith("SASL_"):
                return (
                    "the server closed the connection after the TLS handshake (does the "
                    f"listener require SASL? security_protocol is {protocol})"
                )
            if listener is Listener.TLS:
                return "the server closed the connection after the TLS handshake"
            return "connection closed during the TLS handshake"
        if listener in (Listener.TLS, Listener.TLS_WANTS_CLIENT_CERT):
            return (
                f"the listener expects TLS: set security_protocol to SSL or SASL_SSL "
                f"(it is {protocol})"
            )
        if not protocol.startswith("SASL_"):
            return (
                f"connection closed by the server (does the listener require SASL? "
                f"security_protocol is {protocol})"
            )
        return "connection closed by the server"
    # Rule 5: TCP and name resolution.
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return f"host name not resolved ({error.strerror or error})"
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, OSError):
        return error.strerror or str(error) or type(error).__name__
    # Rule 6: anything else the cluster answered.
    if isinstance(error, KafkaError):
        return describe_kafka_error(error)
    return f"{type(error).__name__}: {error}"


def describe_unreachable(
    servers: Sequence[str],
    failures: Mapping[str, BaseException],
    *,
    facts: ConnectionFacts,
    listeners: Mapping[str, Listener] | None = None,
) -> str:
    """One line naming every bootstrap server and why it could not be used."""
    probes = listeners or {}
    parts = []
    for server in servers:
        error = failures.get(server)
        cause = (
            "no answer recorded"
            if error is None
            else describe_failure(error, facts=facts, listener=probes.get(server))
        )
        parts.append(f"{server}: {cause}")
    return "cannot connect to Kafka: " + "; ".join(parts)


def _not_tls(protocol: str) -> str:
    return (
        f"the listener does not speak TLS (security_protocol is {protocol}; "
        "is it a PLAINTEXT or SASL_PLAINTEXT listener?)"
    )


def _server_message(error: BaseException) -> str:
    # aiokafka builds these errors from the broker's error message (a string) or from the
    # connection object; only the string says anything.
    first = error.args[0] if error.args else None
    return first if isinstance(first, str) else ""


def _is_closed_connection(error: BaseException) -> bool:
    return isinstance(
        error,
        ConnectionResetError
        | BrokenPipeError
        | ssl.SSLEOFError
        | asyncio.IncompleteReadError
        | KafkaConnectionError,
    )


# --- the effectful half: collecting aiokafka's causes, probing listeners ---------------


class BootstrapFailureLog(logging.Filter):
    """Collects the per-server causes aiokafka logs while bootstrapping, holding the records.

    Installed on the ``aiokafka`` logger only during a start: the records are held back so
    a failed start ends with one line instead of aiokafka's log lines plus ours;
    :meth:`release` logs them after all when the start succeeded.
    """

    def __init__(self, servers: Iterable[str] | None = None) -> None:
        super().__init__()
        # Only these servers' records (all when None): another client bootstrapping from
        # elsewhere meanwhile keeps its log lines.
        self._servers = None if servers is None else frozenset(servers)
        self.failures: dict[str, BaseException] = {}
        self._held: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep back ``(host, port, error)`` records; let every other record through."""
        args = record.args
        if (
            isinstance(args, tuple)
            and len(args) == 3
            and isinstance(args[0], str)
            and isinstance(args[1], int)
            and isinstance(args[2], BaseException)
        ):
            server = _server(args[0], args[1])
            if self._servers is not None and server not in self._servers:
                return True
            # The first cause per server is the connect failure; keep it over later ones.
            self.failures.setdefault(server, args[2])
            self._held.append(record)
            return False
        return True

    def release(self, logger: logging.Logger) -> None:
        """Log the held records (call after removing this filter)."""
        for record in self._held:
            logger.handle(record)
        self._held.clear()


async def probe_listener(host: str, port: int, *, time_limit: float = PROBE_TIMEOUT) -> Listener:
    """What listens at ``host:port``: a TLS handshake is tried (certificate not checked),
    then a short read shows whether the server hangs up on a client without a certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(time_limit):
            reader, writer = await asyncio.open_connection(host, port, ssl=context)
    except ssl.SSLError as exc:
        # TLS 1.2 checks the client's certificate inside the handshake.
        if exc.reason in _CLIENT_CERT_REFUSED_REASONS:
            return Listener.TLS_WANTS_CLIENT_CERT
        return Listener.PLAIN
    except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError):
        return Listener.PLAIN
    except (OSError, TimeoutError):
        return Listener.UNREACHABLE
    # A Kafka listener says nothing until asked: silence means it accepted us. Under TLS
    # 1.3 a server that wants a client certificate hangs up right after the handshake.
    found = Listener.TLS
    try:
        async with asyncio.timeout(min(time_limit, CLIENT_CERT_ALERT_WAIT)):
            if not await reader.read(1):
                found = Listener.TLS_WANTS_CLIENT_CERT
    except ssl.SSLError as exc:
        if exc.reason in _CLIENT_CERT_REFUSED_REASONS:
            found = Listener.TLS_WANTS_CLIENT_CERT
    except (OSError, TimeoutError):
        pass
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return found


@contextlib.asynccontextmanager
async def explained_start(
    client_kwargs: Mapping[str, Any], *, probe_timeout: float = PROBE_TIMEOUT
) -> AsyncIterator[None]:
    """Run a Kafka client's start inside: a failure to reach the cluster or a Kafka error
    becomes one :class:`KafkaStartupError` line; other exceptions pass unchanged."""
    logger = logging.getLogger(AIOKAFKA_CLIENT_LOGGER)
    capture = BootstrapFailureLog(bootstrap_servers(client_kwargs))
    logger.addFilter(capture)
    try:
        yield
    except KafkaStartupError:
        raise
    except KafkaError as exc:
        logger.removeFilter(capture)
        raise KafkaStartupError(
            await _explain(exc, client_kwargs, capture.failures, probe_timeout)
        ) from exc
    finally:
        logger.removeFilter(capture)
    capture.release(logger)


async def _explain(
    error: KafkaError,
    client_kwargs: Mapping[str, Any],
    failures: Mapping[str, BaseException],
    probe_timeout: float,
) -> str:
    facts = ConnectionFacts.of(client_kwargs)
    # Only a failed bootstrap is explained per server: causes logged for a server that
    # was skipped on the way to one that answered do not explain a later error.
    if not isinstance(error, KafkaConnectionError) or not failures:
        return f"Kafka refused to start the client: {describe_failure(error, facts=facts)}"
    servers = bootstrap_servers(client_kwargs)
    for server in failures:
        if server not in servers:
            servers.append(server)
    probes: dict[str, Listener] = {}
    for server, failure in failures.items():
        if _is_closed_connection(failure):
            host, _, port = server.rpartition(":")
            probes[server] = await probe_listener(
                host.strip("[]"), int(port), time_limit=probe_timeout
            )
    return describe_unreachable(servers, failures, facts=facts, listeners=probes)


def bootstrap_servers(client_kwargs: Mapping[str, Any]) -> list[str]:
    """The ``HOST:PORT`` bootstrap servers of aiokafka constructor arguments, in order."""
    servers = client_kwargs.get("bootstrap_servers", ())
    if isinstance(servers, str):
        servers = servers.split(",")
    return [str(server).strip() for server in servers if str(server).strip()]


def _server(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
