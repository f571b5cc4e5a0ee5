"""How a test-bed cluster is secured: listener protocol, SASL, users, authorizer, as config.

Pure: nothing here starts a process or writes a file. :class:`SecurityPlan` says what the
cluster asks of clients; its methods turn that into broker properties, ``StorageTool
format`` arguments (SCRAM users exist from the first start in KRaft) and the client settings
of one user, which :mod:`._client` writes as ``client.json`` and ``client.properties``.

Every node has one client listener, named after its protocol (``SASL_SSL://...``), which
is also the inter-broker listener, so replication authenticates like any client (as the
admin, or with the broker certificate in ``ssl`` mode). The KRaft controller listener stays
PLAINTEXT on loopback; its principal is ``User:ANONYMOUS``, which therefore has to be a
super user once the authorizer is on, or a node refuses its own controller's requests.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Mode = Literal["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
MODES: tuple[Mode, ...] = ("plaintext", "ssl", "sasl_plaintext", "sasl_ssl")
MECHANISMS: tuple[Mechanism, ...] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
DEFAULT_MECHANISM: Mechanism = "SCRAM-SHA-512"

#: The super user whose credentials ``client.json`` holds.
ADMIN_USER = "admin"
#: Common name of every broker certificate: the brokers' principal in ``ssl`` mode.
BROKER_CN = "broker"
#: Password of the brokers' PKCS#12 keystores. A constant on purpose: the keystores are as
#: throwaway as the cluster, and the clients' keys sit unencrypted next to them anyway.
KEYSTORE_PASSWORD = "gapwatch-test-bed"
STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
# Kafka's principal is the certificate's whole DN ("CN=mon,O=...") unless a rule maps it;
# mapping it to the CN makes a certificate user look like a SASL user of the same name.
PRINCIPAL_MAPPING_RULES = "RULE:^CN=([^,]+).*$/$1/,DEFAULT"

_JAAS_MODULES: Mapping[Mechanism, str] = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "OAUTHBEARER": "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule",
}
_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Passwords end up inside JAAS strings ("...") and StorageTool's [name=..,password=..]
# syntax, neither of which has a simple escape: characters that would need one are refused.
_PASSWORD_RE = re.compile(r'^[^\s"\\,\[\]=;]{1,128}$')


@dataclass(frozen=True, slots=True)
class User:
    """A client identity: a SASL user, or in ``ssl`` mode a certificate's common name."""

    name: str
    password: str = field(repr=False)


def parse_user(text: str) -> User:
    """``NAME:PASSWORD`` (``--user``); ``ValueError`` if either part is unusable."""
    name, sep, password = text.partition(":")
    if not sep:
        raise ValueError(f"expected NAME:PASSWORD, got {name!r}")
    return checked_user(name, password)


def checked_user(name: str, password: str) -> User:
    """A :class:`User`, after checking both parts fit in Kafka's config syntax."""
    if not _NAME_RE.match(name):
        raise ValueError(f"user name {name!r} must be 1-64 of A-Z a-z 0-9 . _ -")
    if not _PASSWORD_RE.match(password):
        raise ValueError(
            f"password of user {name!r} must be 1-128 characters without spaces or any of "
            '" \\ , [ ] = ;'
        )
    return User(name, password)


@dataclass(frozen=True, slots=True)
class SecurityPlan:
    """What a test-bed cluster demands of its clients.

    ``users`` are extra, non-super users (SCRAM/PLAIN credentials, or client certificates
    in ``ssl`` mode). ``admin_password`` is chosen by the cluster when left empty.
    """

    mode: Mode = "plaintext"
    sasl_mechanism: Mechanism = DEFAULT_MECHANISM
    users: tuple[User, ...] = ()
    has_authorizer: bool = False
    admin_password: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"security mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.sasl_mechanism not in MECHANISMS:
            raise ValueError(
                f"SASL mechanism {self.sasl_mechanism!r} is not one of {', '.join(MECHANISMS)}"
            )
        names = [user.name for user in self.users]
        if ADMIN_USER in names or (self.mode == "ssl" and BROKER_CN in names):
            raise ValueError(f"user names {ADMIN_USER!r} and {BROKER_CN!r} are the test bed's")
        if len(set(names)) != len(names):
            raise ValueError(f"user names must be distinct, got {names}")
        for user in self.users:
            checked_user(user.name, user.password)
        if self.admin_password:
            checked_user(ADMIN_USER, self.admin_password)

    @property
    def protocol(self) -> str:
        """Kafka's ``security.protocol`` of the client listener (``SASL_SSL``...)."""
        return self.mode.upper()

    @property
    def listener_name(self) -> str:
        """Name of the client (and inter-broker) listener: the protocol's own name."""
        return self.protocol

    @property
    def uses_tls(self) -> bool:
        """Whether the client listener encrypts with TLS."""
        return self.mode in ("ssl", "sasl_ssl")

    @property
    def uses_sasl(self) -> bool:
        """Whether clients authenticate with SASL."""
        return self.mode.startswith("sasl_")

    @property
    def uses_client_certificates(self) -> bool:
        """Whether clients authenticate with a certificate (mutual TLS): ``ssl`` mode."""
        return self.mode == "ssl"

    @property
    def uses_oauthbearer(self) -> bool:
        """Whether clients authenticate with an (unsecured) OAUTHBEARER token."""
        return self.uses_sasl and self.sasl_mechanism == "OAUTHBEARER"

    @property
    def identities(self) -> tuple[User, ...]:
        """The admin first, then every extra user."""
        return (User(ADMIN_USER, self.admin_password), *self.users)

    def super_users(self) -> list[str]:
        """Principals the authorizer lets do anything: the admin, the controller listener's
        ``ANONYMOUS`` and, in ``ssl`` mode, the brokers' certificate."""
        principals = [f"User:{ADMIN_USER}", "User:ANONYMOUS"]
        if self.uses_client_certificates:
            principals.append(f"User:{BROKER_CN}")
        return principals

    def broker_properties(self, *, keystore: Path, truststore: Path) -> dict[str, str]:
        """Broker settings for this plan (empty for plaintext without an authorizer).

        ``keystore`` is the node's PKCS#12 file, ``truststore`` the CA's PEM certificate.
        """
        props: dict[str, str] = {}
        if self.uses_tls:
            props.update(
                {
                    "ssl.keystore.type": "PKCS12",
                    "ssl.keystore.location": str(keystore),
                    "ssl.keystore.password": KEYSTORE_PASSWORD,
                    "ssl.key.password": KEYSTORE_PASSWORD,
                    "ssl.truststore.type": "PEM",
                    "ssl.truststore.location": str(truststore),
                    "ssl.client.auth": "required" if self.uses_client_certificates else "none",
                    "ssl.principal.mapping.rules": PRINCIPAL_MAPPING_RULES,
                }
            )
        if self.uses_sasl:
            prefix = f"listener.name.{self.listener_name.lower()}.{self.sasl_mechanism.lower()}"
            props.update(
                {
                    "sasl.enabled.mechanisms": self.sasl_mechanism,
                    "sasl.mechanism.inter.broker.protocol": self.sasl_mechanism,
                    f"{prefix}.sasl.jaas.config": self.broker_jaas(),
                }
            )
        if self.has_authorizer:
            props["authorizer.class.name"] = STANDARD_AUTHORIZER
            props["super.users"] = ";".join(self.super_users())
        return props

    def broker_jaas(self) -> str:
        """The listener's JAAS line: the broker's own login (as the admin) and, for PLAIN,
        the table of users it accepts."""
        module = _JAAS_MODULES[self.sasl_mechanism]
        if self.sasl_mechanism == "OAUTHBEARER":
            # No server callback handler is configured, so Kafka validates tokens with its
            # unsecured validator: unsigned JWTs, as in its own OAUTHBEARER quickstart.
            return f'{module} required unsecuredLoginStringClaim_sub="{ADMIN_USER}";'
        options = [f'username="{ADMIN_USER}"', f'password="{self.admin_password}"']
        if self.sasl_mechanism == "PLAIN":
            options.extend(f'user_{u.name}="{u.password}"' for u in self.identities)
        return f"{module} required {' '.join(options)};"

    def format_arguments(self) -> list[str]:
        """Extra ``StorageTool format`` arguments: KRaft stores SCRAM credentials in the
        metadata log, so they are added when storage is formatted."""
        if not (self.uses_sasl and self.sasl_mechanism.startswith("SCRAM-")):
            return []
        arguments: list[str] = []
        for user in self.identities:
            arguments += [
                "--add-scram",
                f"{self.sasl_mechanism}=[name={user.name},password={user.password}]",
            ]
        return arguments

    def to_record(self) -> dict[str, object]:
        """JSON-able form for the state file, so a later CLI command can reconnect."""
        return {
            "mode": self.mode,
            "sasl_mechanism": self.sasl_mechanism,
            "users": [[u.name, u.password] for u in self.users],
            "has_authorizer": self.has_authorizer,
            "admin_password": self.admin_password,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> SecurityPlan:
        """Inverse of :meth:`to_record`; an empty record is plaintext."""
        raw_users = record.get("users") or []
        if not isinstance(raw_users, list):
            raise ValueError(f"users must be a list, got {raw_users!r}")
        return cls(
            mode=as_mode(str(record.get("mode", "plaintext"))),
            sasl_mechanism=as_mechanism(str(record.get("sasl_mechanism", DEFAULT_MECHANISM))),
            users=tuple(User(str(name), str(password)) for name, password in raw_users),
            has_authorizer=bool(record.get("has_authorizer", False)),
            admin_password=str(record.get("admin_password", "")),
        )


def as_mode(text: str) -> Mode:
    """``text`` as a :data:`Mode`; ``ValueError`` naming the choices otherwise."""
    for mode in MODES:
        if text == mode:
            return mode
    raise ValueError(f"security mode {text!r} is not one of {', '.join(MODES)}")


def as_mechanism(text: str) -> Mechanism:
    """``text`` as a :data:`Mechanism`; ``ValueError`` naming the choices otherwise."""
    for mechanism in MECHANISMS:
        if text == mechanism:
            return mechanism
    raise ValueError(f"SASL mechanism {text!r} is not one of {', '.join(MECHANISMS)}")


def unsecured_jwt(subject: str, *, issued_at: int, lifetime_s: int) -> str:
    """An unsigned JWT (``alg: none``) with ``sub``, ``iat`` and ``exp``: what Kafka's
    unsecured OAUTHBEARER validator accepts. ``issued_at`` is seconds since the epoch."""

    def encode(part: Mapping[str, object]) -> str:
        raw = json.dumps(part, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    header = encode({"alg": "none"})
    claims = encode({"sub": subject, "iat": issued_at, "exp": issued_at + lifetime_s})
    return f"{header}.{claims}."


def plan_from_arguments(
    mode: str, mechanism: str | None, users: Sequence[str], *, has_authorizer: bool
) -> SecurityPlan:
    """A plan from the CLI's ``--security``, ``--sasl-mechanism``, ``--user`` values."""
    return SecurityPlan(
        mode=as_mode(mode),
        sasl_mechanism=as_mechanism(mechanism or DEFAULT_MECHANISM),
        users=tuple(parse_user(text) for text in users),
        has_authorizer=has_authorizer,
    )
