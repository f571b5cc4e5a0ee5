"""How gapwatch's aiokafka clients reach the cluster: servers, security, fetch tuning.

:class:`KafkaSettings` is the ``kafka`` section of the monitor's configuration;
:func:`client_kwargs` turns it into aiokafka constructor arguments. The consumer, the
checkpoint producer, the report reader, the admin client and ``gapwatch audit`` all
connect the same way; building the arguments in one place keeps SSL/SASL handling
identical across them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gapwatch.errors import ConfigError

IsolationLevel = Literal["read_uncommitted", "read_committed"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """Kafka client security, passed through to aiokafka unchanged in meaning."""

    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: str | None = field(default=None, repr=False)
    ssl_check_hostname: bool = True

    @property
    def uses_sasl(self) -> bool:
        """Whether the protocol authenticates with SASL."""
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_ssl(self) -> bool:
        """Whether the protocol encrypts with TLS."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    def validate(self) -> None:
        """Raise :class:`ConfigError` unless the settings can be used together."""
        if self.uses_sasl and (not self.sasl_username or self.sasl_password is None):
            key = "sasl_username" if not self.sasl_username else "sasl_password"
            raise ConfigError(key, f"is required with security_protocol={self.security_protocol}")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            key = "ssl_keyfile" if self.ssl_keyfile is None else "ssl_certfile"
            raise ConfigError(key, "ssl_certfile and ssl_keyfile must be given together")
        for key, path in (
            ("ssl_cafile", self.ssl_cafile),
            ("ssl_certfile", self.ssl_certfile),
            ("ssl_keyfile", self.ssl_keyfile),
        ):
            if path is not None and not path.is_file():
                raise ConfigError(key, f"file {str(path)!r} does not exist")


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """How the monitor talks to the cluster."""

    bootstrap_servers: tuple[str, ...] = ()
    client_id: str = "gapwatch-monitor"
    isolation_level: IsolationLevel = "read_uncommitted"
    max_poll_records: int = 5000
    fetch_max_wait_ms: int = 250
    # The broker answers a fetch once this much is ready (or fetch_max_wait_ms passed).
    # aiokafka has no incremental fetch sessions: every response lists every assigned
    # partition, so with Kafka's default of 1 byte a monitor of hundreds of partitions
    # under a trickle of records decoded a full response per produce request.
    fetch_min_bytes: int = 64 * 1024
    max_partition_fetch_bytes: int = 1024 * 1024
    security: SecuritySettings = SecuritySettings()

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

    ``suffix`` is appended to the client id so broker logs and quotas can tell the
    monitor's clients apart (``gapwatch-monitor-checkpoints``...).
    """
    # Imported here: the settings are part of every command line's configuration, which
    # must load without aiokafka (``gapwatch --version`` stays instant).
    from aiokafka.helpers import create_ssl_context

    security = kafka.security
    kwargs: dict[str, Any] = {
        "bootstrap_servers": list(kafka.bootstrap_servers),
        "client_id": kafka.client_id + suffix,
        "security_protocol": security.security_protocol,
    }
    if security.uses_ssl:
        context = create_ssl_context(
            cafile=security.ssl_cafile,
            certfile=security.ssl_certfile,
            keyfile=security.ssl_keyfile,
            password=security.ssl_key_password,
        )
        # create_ssl_context always checks hostnames; the opt-out exists for brokers
        # reached through an address that is not in their certificate (port-forwards).
        context.check_hostname = security.ssl_check_hostname
        kwargs["ssl_context"] = context
    if security.uses_sasl:
        kwargs["sasl_mechanism"] = security.sasl_mechanism
        kwargs["sasl_plain_username"] = security.sasl_username
        kwargs["sasl_plain_password"] = security.sasl_password
    return kwargs
