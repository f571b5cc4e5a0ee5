"""What a client needs to reach a test-bed cluster as one user, in three spellings.

:class:`ClientConfig` is written as ``client.json`` (gapwatch's own configuration keys, so
``gapwatch monitor --config DIR/client.json`` reads it) and ``client.properties``
(librdkafka's names, for ``kcat -F``), and turned into aiokafka arguments for the test
bed's own admin requests. :class:`TlsFiles` says where a cluster keeps its certificates.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.abc import AbstractTokenProvider
from aiokafka.helpers import create_ssl_context

from gapwatch.testing._security import SecurityPlan, User, unsecured_jwt
from gapwatch.testing._state import write_private

CLIENT_JSON = "client.json"
CLIENT_PROPERTIES = "client.properties"
#: Lifetime of the unsecured OAUTHBEARER tokens the test bed makes.
TOKEN_LIFETIME_S = 3600


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where a cluster's certificates live: ``<state dir>/tls/``."""

    root: Path

    @property
    def ca_certificate(self) -> Path:
        """The CA's PEM certificate, trusted by brokers and clients."""
        return self.root / "ca.crt"

    def keystore(self, node_id: int) -> Path:
        """Node ``node_id``'s PKCS#12 keystore."""
        return self.root / f"node-{node_id}.p12"

    def certificate(self, user: str) -> Path:
        """``user``'s client certificate (PEM)."""
        return self.root / f"{user}.crt"

    def key(self, user: str) -> Path:
        """``user``'s client key (unencrypted PKCS#8 PEM)."""
        return self.root / f"{user}.key"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """How one user connects: gapwatch's key names, ``None`` where a key does not apply."""

    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    @classmethod
    def for_user(
        cls, plan: SecurityPlan, user: User, *, bootstrap_servers: str, tls: TlsFiles
    ) -> ClientConfig:
        """``user``'s settings on a cluster secured by ``plan``."""
        has_password = plan.uses_sasl and not plan.uses_oauthbearer
        return cls(
            bootstrap_servers=bootstrap_servers,
            security_protocol=plan.protocol,
            sasl_mechanism=plan.sasl_mechanism if plan.uses_sasl else None,
            sasl_username=user.name if plan.uses_sasl else None,
            sasl_password=user.password if has_password else None,
            ssl_cafile=str(tls.ca_certificate) if plan.uses_tls else None,
            ssl_certfile=(
                str(tls.certificate(user.name)) if plan.uses_client_certificates else None
            ),
            ssl_keyfile=str(tls.key(user.name)) if plan.uses_client_certificates else None,
        )

    def to_json(self) -> dict[str, str]:
        """The keys that apply, as gapwatch's configuration spells them."""
        return {
            key: value
            for key, value in (
                ("bootstrap_servers", self.bootstrap_servers),
                ("security_protocol", self.security_protocol),
                ("sasl_mechanism", self.sasl_mechanism),
                ("sasl_username", self.sasl_username),
                ("sasl_password", self.sasl_password),
                ("ssl_cafile", self.ssl_cafile),
                ("ssl_certfile", self.ssl_certfile),
                ("ssl_keyfile", self.ssl_keyfile),
            )
            if value is not None
        }

    def to_librdkafka(self) -> dict[str, str]:
        """The same settings under librdkafka's names (``kcat -F``, confluent-kafka)."""
        props = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol.lower(),
        }
        if self.sasl_mechanism is not None:
            props["sasl.mechanisms"] = self.sasl_mechanism
        if self.sasl_mechanism == "OAUTHBEARER":
            # librdkafka's built-in unsecured token maker, the counterpart of the broker's
            # unsecured validator.
            props["enable.sasl.oauthbearer.unsecure.jwt"] = "true"
            props["sasl.oauthbearer.config"] = f"principal={self.sasl_username}"
        else:
            for key, value in (
                ("sasl.username", self.sasl_username),
                ("sasl.password", self.sasl_password),
            ):
                if value is not None:
                    props[key] = value
        for key, value in (
            ("ssl.ca.location", self.ssl_cafile),
            ("ssl.certificate.location", self.ssl_certfile),
            ("ssl.key.location", self.ssl_keyfile),
        ):
            if value is not None:
                props[key] = value
        return props

    def aiokafka_options(self) -> dict[str, Any]:
        """aiokafka constructor arguments for this user, without ``bootstrap_servers``."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.ssl_cafile is not None:
            options["ssl_context"] = create_ssl_context(
                cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile
            )
        if self.sasl_mechanism == "OAUTHBEARER":
            options["sasl_mechanism"] = "OAUTHBEARER"
            options["sasl_oauth_token_provider"] = UnsecuredTokenProvider(self.sasl_username or "")
        elif self.sasl_mechanism is not None:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options

    def write(self, state_dir: Path) -> None:
        """``client.json`` and ``client.properties`` in ``state_dir``, readable only by the
        owner (they hold the admin's password)."""
        write_private(state_dir / CLIENT_JSON, json.dumps(self.to_json(), indent=2) + "\n")
        lines = [f"{key}={value}" for key, value in self.to_librdkafka().items()]
        write_private(state_dir / CLIENT_PROPERTIES, "\n".join(lines) + "\n")


class UnsecuredTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """aiokafka token provider making unsigned JWTs for ``subject``, which a broker with
    Kafka's default (unsecured) OAUTHBEARER validator accepts. For tests only."""

    def __init__(self, subject: str, lifetime_s: int = TOKEN_LIFETIME_S) -> None:
        self.subject = subject
        self.lifetime_s = lifetime_s

    async def token(self) -> str:
        """A fresh token, so it never expires while a client holds on to it."""
        return unsecured_jwt(self.subject, issued_at=int(time.time()), lifetime_s=self.lifetime_s)
