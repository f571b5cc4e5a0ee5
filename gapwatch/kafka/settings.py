"""How gapwatch's aiokafka clients reach the cluster: servers, security, fetch tuning.

:class:`KafkaSettings` is the ``kafka`` section of the monitor's configuration;
:func:`client_kwargs` turns it into aiokafka constructor arguments. The consumer, the
checkpoint and gap-log clients, the report reader, the admin clients, the load generator,
``gapwatch audit`` and the verifier all connect the same way; building the arguments in
one place keeps TLS, SASL and OAUTHBEARER handling identical across them.
"""

from __future__ import annotations

import math
import re
import shlex
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gapwatch.errors import ConfigError
from gapwatch.kafka.secret import Secret, as_secret, hide_sasl_exchanges, read_secret_file

IsolationLevel = Literal["read_uncommitted", "read_committed"]
# A function returning an OAUTHBEARER token, or an awaitable of one (library use).
TokenCallable = Callable[[], str | Awaitable[str]]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]

# A token without an ``exp`` claim is used this long (seconds): an hour is the usual
# lifetime of a cloud access token.
DEFAULT_OAUTH_TOKEN_LIFETIME_S = 3600.0


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """Kafka client security, passed through to aiokafka unchanged in meaning.

    Every secret can be given inline (``sasl_password``: a ``str`` is wrapped as a
    :class:`~gapwatch.kafka.secret.Secret`) or as a file read when a client is built
    (``sasl_password_file``, ``ssl_key_password_file``), so it never has to appear on a
    command line. OAUTHBEARER takes exactly one token source: a Python callable
    (``sasl_oauth_token_provider``, library use), a command (``sasl_oauth_token_command``)
    or a file (``sasl_oauth_token_file``); see :mod:`gapwatch.kafka.oauth`.
    """

    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "PLAIN"
    sasl_username: str | None = None
    sasl_password: Secret | str | None = field(default=None, repr=False)
    sasl_password_file: Path | None = None
    sasl_oauth_token_command: str | None = field(default=None, repr=False)
    sasl_oauth_token_file: Path | None = None
    sasl_oauth_token_lifetime: float = DEFAULT_OAUTH_TOKEN_LIFETIME_S
    sasl_oauth_token_provider: TokenCallable | None = field(default=None, repr=False, compare=False)
    sasl_oauth_extensions: tuple[str, ...] = ()
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: Secret | str | None = field(default=None, repr=False)
    ssl_key_password_file: Path | None = None
    ssl_check_hostname: bool = True
    # The token provider, made on first use and shared by every client built from these
    # settings: a monitor's eight clients then fetch one token per refresh, not eight.
    _token_provider: list[Any] = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Wrapped at once, so no copy of the plain string lives on in the settings.
        object.__setattr__(self, "sasl_password", as_secret(self.sasl_password))
        object.__setattr__(self, "ssl_key_password", as_secret(self.ssl_key_password))

    @property
    def uses_sasl(self) -> bool:
        """Whether the protocol authenticates with SASL."""
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_ssl(self) -> bool:
        """Whether the protocol encrypts with TLS."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_oauth(self) -> bool:
        """Whether the client authenticates with an OAUTHBEARER token."""
        return self.uses_sasl and self.sasl_mechanism == "OAUTHBEARER"

    def validate(self) -> None:
        """Raise :class:`ConfigError` unless the settings can be used together."""
        if self.uses_oauth:
            self._validate_oauth()
        elif self.uses_sasl:
            if not self.sasl_username:
                raise ConfigError(
                    "sasl_username", f"is required with security_protocol={self.security_protocol}"
                )
            _require_one_of(
                ("sasl_password", self.sasl_password),
                ("sasl_password_file", self.sasl_password_file),
                why=f"with security_protocol={self.security_protocol}",
            )
        if not self.uses_oauth:
            for key, value in (
                ("sasl_oauth_token_command", self.sasl_oauth_token_command),
                ("sasl_oauth_token_file", self.sasl_oauth_token_file),
                ("sasl_oauth_token_provider", self.sasl_oauth_token_provider),
            ):
                if value is not None:
                    raise ConfigError(key, "needs sasl_mechanism=OAUTHBEARER with SASL_*")
        if self.ssl_key_password is not None and self.ssl_key_password_file is not None:
            raise ConfigError("ssl_key_password_file", "give ssl_key_password or its file")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            key = "ssl_keyfile" if self.ssl_keyfile is None else "ssl_certfile"
            raise ConfigError(key, "ssl_certfile and ssl_keyfile must be given together")
        for key, path in (
            ("ssl_cafile", self.ssl_cafile),
            ("ssl_certfile", self.ssl_certfile),
            ("ssl_keyfile", self.ssl_keyfile),
            ("ssl_key_password_file", self.ssl_key_password_file),
            ("sasl_password_file", self.sasl_password_file),
            ("sasl_oauth_token_file", self.sasl_oauth_token_file),
        ):
            if path is not None and not path.is_file():
                raise ConfigError(key, f"file {str(path)!r} does not exist")

    def _validate_oauth(self) -> None:
        _require_one_of(
            ("sasl_oauth_token_provider", self.sasl_oauth_token_provider),
            ("sasl_oauth_token_command", self.sasl_oauth_token_command),
            ("sasl_oauth_token_file", self.sasl_oauth_token_file),
            why="with sasl_mechanism=OAUTHBEARER",
        )
        if self.sasl_oauth_token_command is not None and not shlex.split(
            self.sasl_oauth_token_command
        ):
            raise ConfigError("sasl_oauth_token_command", "must not be empty")
        if not (
            math.isfinite(self.sasl_oauth_token_lifetime) and self.sasl_oauth_token_lifetime > 0
        ):
            raise ConfigError("sasl_oauth_token_lifetime", "must be > 0 seconds")
        parse_extensions(self.sasl_oauth_extensions)

    def token_provider(self) -> Any:
        """The OAUTHBEARER token provider (an aiokafka ``AbstractTokenProvider``).

        Made once per settings object and shared by every client built from it, so one
        cache serves them all (:mod:`gapwatch.kafka.oauth`).
        """
        if not self._token_provider:
            self._token_provider.append(_new_token_provider(self))
        return self._token_provider[0]

    def read_sasl_password(self) -> Secret | None:
        """The SASL password, read from ``sasl_password_file`` when that is how it is given."""
        if self.sasl_password_file is not None:
            return read_secret_file(self.sasl_password_file, key="sasl_password_file")
        return as_secret(self.sasl_password)

    def read_ssl_key_password(self) -> Secret | None:
        """The client key's password, read from its file when that is how it is given."""
        if self.ssl_key_password_file is not None:
            return read_secret_file(self.ssl_key_password_file, key="ssl_key_password_file")
        return as_secret(self.ssl_key_password)


# RFC 7628 section 3.1 (as Kafka checks it): a key is letters only, a value printable
# ASCII or whitespace; "auth" is the token's own key.
_EXTENSION_KEY = re.compile(r"[A-Za-z]+")
_EXTENSION_VALUE = re.compile(r"[\x21-\x7e \t\r\n]+")


def parse_extensions(items: tuple[str, ...]) -> dict[str, str]:
    """``("logicalCluster=lkc-1", ...)`` as a mapping; :class:`ConfigError` if malformed."""
    extensions: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not _EXTENSION_KEY.fullmatch(key) or key == "auth":
            raise ConfigError("sasl_oauth_extensions", f"{key!r} is not a KEY=VALUE extension")
        if not _EXTENSION_VALUE.fullmatch(value):
            raise ConfigError("sasl_oauth_extensions", f"the value of {key!r} is not printable")
        extensions[key] = value
    return extensions


def _require_one_of(*options: tuple[str, object], why: str) -> None:
    given = [key for key, value in options if value is not None]
    if not given:
        others = " or ".join(key for key, _ in options[1:])
        raise ConfigError(options[0][0], f"is required {why} (or {others})")
    if len(given) > 1:
        raise ConfigError(given[1], f"give only one of {', '.join(given)}")


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """How the monitor talks to the cluster."""

    bootstrap_servers: tuple[str, ...] = ()
    client_id: str = "gapwatch-monitor"
    isolation_level: IsolationLevel = "read_uncommitted"
    max_poll_records: int = 5000
    fetch_max_wait_ms: int = 250
    # The broker answers a fetch once this much is ready (or fetch_max_wait_ms passed).
    # Without fetch sessions (fetch_sessions off, or aiokafka's own fetching) every
    # response lists every assigned partition, so with Kafka's default of 1 byte a monitor
    # of hundreds of partitions under a trickle of records decoded a full response per
    # produce request.
    fetch_min_bytes: int = 64 * 1024
    max_partition_fetch_bytes: int = 1024 * 1024
    # Take fetched records from aiokafka's record batches without a ConsumerRecord each
    # (gapwatch.kafka.aiokafka_consumer.RecordFetcher); False: aiokafka's public getmany().
    read_batches_directly: bool = True
    # Fetch in incremental fetch sessions (KIP-227), one per broker, so a request names and
    # a response holds only the partitions that changed
    # (gapwatch.kafka.aiokafka_consumer.FetchSessions); False: aiokafka's own fetching.
    fetch_sessions: bool = True
    security: SecuritySettings = field(default_factory=SecuritySettings)

    def validate(self) -> None:
        """Raise :class:`ConfigError` unless the settings are usable."""
        for key, value in (
            ("max_poll_records", self.max_poll_records),
            ("fetch_max_wait_ms", self.fetch_max_wait_ms),
            ("fetch_min_bytes", self.fetch_min_bytes),
            ("max_partition_fetch_bytes", self.max_partition_fetch_bytes),
        ):
            if value < 1:
                raise ConfigError(key, "must be >= 1")
        if not self.bootstrap_servers:
            raise ConfigError("bootstrap_servers", "is required (HOST:PORT[,HOST:PORT])")
        for server in self.bootstrap_servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError("bootstrap_servers", f"{server!r} is not HOST:PORT")
        self.security.validate()


def client_kwargs(kafka: KafkaSettings, *, suffix: str = "") -> dict[str, Any]:
    """aiokafka constructor arguments for connecting with ``kafka``'s servers and security.

    The only place gapwatch turns its settings into aiokafka's security arguments: every
    client it makes (consumers, producers, admin clients, of the monitor, the load
    generator, ``gapwatch audit`` and the verifier) is built from this. Secrets given as
    files are read here, so a rotated file reaches the next client built.

    ``suffix`` is appended to the client id so broker logs and quotas can tell the
    monitor's clients apart (``gapwatch-monitor-checkpoints``...).
    """
    kwargs: dict[str, Any] = {
        "bootstrap_servers": list(kafka.bootstrap_servers),
        "client_id": kafka.client_id + suffix,
    }
    kwargs.update(_security_kwargs(kafka.security))
    return kwargs


def _security_kwargs(security: SecuritySettings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"security_protocol": security.security_protocol}
    if security.uses_sasl:
        # Here, not in each command: every client gapwatch builds passes through this
        # function, so no path to aiokafka can log a password at DEBUG level.
        hide_sasl_exchanges()
    if security.uses_ssl:
        kwargs["ssl_context"] = _ssl_context(security)
    if security.uses_oauth:
        kwargs["sasl_mechanism"] = "OAUTHBEARER"
        kwargs["sasl_oauth_token_provider"] = security.token_provider()
    elif security.uses_sasl:
        password = security.read_sasl_password()
        kwargs["sasl_mechanism"] = security.sasl_mechanism
        kwargs["sasl_plain_username"] = security.sasl_username
        kwargs["sasl_plain_password"] = None if password is None else password.reveal()
    return kwargs


def _ssl_context(security: SecuritySettings) -> ssl.SSLContext:
    """The TLS context: the CA to trust, and the client certificate for mutual TLS."""
    # Imported here: the settings are part of every command line's configuration, which
    # must load without aiokafka (``gapwatch --version`` stays instant).
    from aiokafka.helpers import create_ssl_context

    try:
        context: ssl.SSLContext = create_ssl_context(cafile=security.ssl_cafile)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError("ssl_cafile", f"cannot load the CA file{_ssl_reason(exc)}") from None
    if security.ssl_certfile is not None:
        key_password = security.read_ssl_key_password()
        try:
            context.load_cert_chain(
                security.ssl_certfile,
                security.ssl_keyfile,
                # Always a callable: without one OpenSSL prompts for the password on the
                # terminal, which would hang a service instead of failing.
                password=lambda: "" if key_password is None else key_password.reveal(),
            )
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                "ssl_keyfile",
                "cannot load the client certificate and key (a wrong or missing "
                f"ssl_key_password, or not a matching PEM pair){_ssl_reason(exc)}",
            ) from None
    # create_ssl_context always checks hostnames; the opt-out exists for brokers
    # reached through an address that is not in their certificate (port-forwards).
    context.check_hostname = security.ssl_check_hostname
    return context


def _ssl_reason(exc: ssl.SSLError | OSError) -> str:
    """``": "`` and OpenSSL's reason in words, or nothing when it gives none."""
    reason: str | None = exc.reason if isinstance(exc, ssl.SSLError) else exc.strerror
    return f": {str(reason).lower().replace('_', ' ')}" if reason else ""


def _new_token_provider(security: SecuritySettings) -> Any:
    # Imported here: aiokafka (which the providers subclass) loads only for OAUTHBEARER.
    from gapwatch.kafka.oauth import (
        CachingTokenProvider,
        CallableTokenProvider,
        command_token_source,
        file_token_source,
    )

    extensions = parse_extensions(security.sasl_oauth_extensions)
    if security.sasl_oauth_token_provider is not None:
        return CallableTokenProvider(security.sasl_oauth_token_provider, extensions=extensions)
    if security.sasl_oauth_token_command is not None:
        return CachingTokenProvider(
            command_token_source(security.sasl_oauth_token_command),
            lifetime=security.sasl_oauth_token_lifetime,
            describe="sasl_oauth_token_command",
            extensions=extensions,
        )
    if security.sasl_oauth_token_file is not None:
        return CachingTokenProvider(
            file_token_source(security.sasl_oauth_token_file),
            lifetime=security.sasl_oauth_token_lifetime,
            describe="sasl_oauth_token_file",
            extensions=extensions,
        )
    raise ConfigError("sasl_oauth_token_provider", "OAUTHBEARER needs a token source")
