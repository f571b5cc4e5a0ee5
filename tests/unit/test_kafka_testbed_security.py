"""Unit tests of the test bed's secured clusters: broker settings, users, client files,
certificates. No Kafka is started; tests/integration/test_security_modes.py runs them."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from gapwatch.monitor.config_sources import FIELDS_BY_KEY
from gapwatch.testing import _cli, _security
from gapwatch.testing._certs import CertificateAuthority
from gapwatch.testing._client import ClientConfig, TlsFiles
from gapwatch.testing._config import parse_properties, plan_nodes, server_properties
from gapwatch.testing._launcher import Launcher
from gapwatch.testing._security import (
    KEYSTORE_PASSWORD,
    PRINCIPAL_MAPPING_RULES,
    SecurityPlan,
    User,
    parse_user,
    plan_from_arguments,
    unsecured_jwt,
)

MON = User("mon", "mon-secret")


def _broker_props(plan: SecurityPlan, tmp_path: Path) -> dict[str, str]:
    node = plan_nodes(tmp_path, 1, ports=[9092, 9093])[0]
    tls = TlsFiles(tmp_path / "tls")
    return server_properties(
        node,
        [node],
        security=plan.broker_properties(keystore=tls.keystore(1), truststore=tls.ca_certificate),
        listener=plan.listener_name,
    )


def _client(plan: SecurityPlan, user: User, tmp_path: Path) -> ClientConfig:
    return ClientConfig.for_user(
        plan, user, bootstrap_servers="127.0.0.1:9092", tls=TlsFiles(tmp_path / "tls")
    )


class TestBrokerSettings:
    def test_plaintext_adds_nothing_to_the_layout(self, tmp_path: Path) -> None:
        """The default plan leaves the plaintext cluster's configuration as it always was."""
        props = _broker_props(SecurityPlan(), tmp_path)
        assert props["listeners"].startswith("PLAINTEXT://127.0.0.1:9092,CONTROLLER://")
        assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
        assert props["inter.broker.listener.name"] == "PLAINTEXT"
        assert not [k for k in props if k.startswith(("ssl.", "sasl.", "listener.name."))]
        assert "authorizer.class.name" not in props

    def test_sasl_ssl_scram_listener_and_inter_broker_login(self, tmp_path: Path) -> None:
        """The client listener is the inter-broker one, and the broker logs in as admin."""
        plan = SecurityPlan(
            mode="sasl_ssl", sasl_mechanism="SCRAM-SHA-256", admin_password="pw-admin"
        )
        props = _broker_props(plan, tmp_path)
        assert props["listeners"].startswith("SASL_SSL://127.0.0.1:9092,")
        assert props["advertised.listeners"] == "SASL_SSL://127.0.0.1:9092"
        assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
        assert props["inter.broker.listener.name"] == "SASL_SSL"
        assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-256"
        assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-256"
        jaas = props["listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config"]
        assert jaas == (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            'username="admin" password="pw-admin";'
        )
        assert props["ssl.keystore.type"] == "PKCS12"
        assert props["ssl.keystore.location"] == str(tmp_path / "tls" / "node-1.p12")
        assert props["ssl.truststore.type"] == "PEM"
        assert props["ssl.client.auth"] == "none"

    def test_plain_lists_every_user_in_the_jaas_line(self) -> None:
        """PLAIN users live in the broker's JAAS line; SCRAM users are made at format time."""
        plan = SecurityPlan(
            mode="sasl_plaintext", sasl_mechanism="PLAIN", users=(MON,), admin_password="pw"
        )
        jaas = plan.broker_jaas()
        assert 'user_admin="pw"' in jaas
        assert 'user_mon="mon-secret"' in jaas
        assert plan.format_arguments() == []

    def test_scram_users_are_added_when_storage_is_formatted(self) -> None:
        """Each SCRAM user, the admin first, becomes one --add-scram argument."""
        plan = SecurityPlan(mode="sasl_ssl", users=(MON,), admin_password="pw")
        assert plan.format_arguments() == [
            "--add-scram",
            "SCRAM-SHA-512=[name=admin,password=pw]",
            "--add-scram",
            "SCRAM-SHA-512=[name=mon,password=mon-secret]",
        ]

    def test_oauthbearer_uses_the_unsecured_login_as_admin(self) -> None:
        """No callback handler is set, so Kafka's unsecured validator checks tokens."""
        plan = SecurityPlan(mode="sasl_ssl", sasl_mechanism="OAUTHBEARER", admin_password="pw")
        assert plan.broker_jaas() == (
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
            'unsecuredLoginStringClaim_sub="admin";'
        )
        assert not [
            k for k in plan.broker_properties(keystore=Path(), truststore=Path()) if "callback" in k
        ]

    def test_ssl_requires_client_certificates_mapped_to_their_cn(self, tmp_path: Path) -> None:
        """Mutual TLS: a client without a certificate is refused; the principal is the CN."""
        props = _broker_props(SecurityPlan(mode="ssl", has_authorizer=True), tmp_path)
        assert props["ssl.client.auth"] == "required"
        assert props["ssl.principal.mapping.rules"] == PRINCIPAL_MAPPING_RULES
        assert props["super.users"] == "User:admin;User:ANONYMOUS;User:broker"

    def test_authorizer_trusts_the_admin_and_the_controller_listener(self, tmp_path: Path) -> None:
        """The controller listener is PLAINTEXT, so ANONYMOUS must be a super user."""
        props = _broker_props(SecurityPlan(mode="sasl_ssl", has_authorizer=True), tmp_path)
        assert props["authorizer.class.name"] == (
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
        )
        assert props["super.users"] == "User:admin;User:ANONYMOUS"

    def test_mapping_rule_turns_javas_dn_into_the_cn(self) -> None:
        """The certificate's subject, as Java prints it (RFC 2253), maps to the user name."""
        leaf = CertificateAuthority.create().issue("mon")
        dn = leaf.certificate.subject.rfc4514_string()
        rule = re.fullmatch(r"RULE:(.*)/(.*)/,DEFAULT", PRINCIPAL_MAPPING_RULES)
        assert rule is not None
        pattern, replacement = rule.groups()
        assert dn == "CN=mon,O=gapwatch test bed"
        assert re.sub(pattern, replacement.replace("$1", r"\1"), dn) == "mon"


class TestUsers:
    def test_user_argument_is_name_colon_password(self) -> None:
        """``--user mon:s3cret!`` gives user mon; the password may hold a colon."""
        assert parse_user("mon:s3cret!") == User("mon", "s3cret!")
        assert parse_user("mon:a:b") == User("mon", "a:b")

    @pytest.mark.parametrize(
        "text", ["mon", "mon:", ":pw", "bad name:pw", 'mon:pa"ss', "mon:pa,ss", "mon:a]b"]
    )
    def test_unusable_users_are_refused(self, text: str) -> None:
        """Names and passwords that Kafka's config syntax cannot hold are refused up front."""
        with pytest.raises(ValueError, match=r"NAME:PASSWORD|user name|password"):
            parse_user(text)

    def test_the_super_user_name_is_reserved(self) -> None:
        """The admin is the test bed's; an extra user may not take its name."""
        with pytest.raises(ValueError, match="test bed's"):
            SecurityPlan(mode="sasl_ssl", users=(User("admin", "pw"),))

    def test_user_names_are_distinct(self) -> None:
        """Two users of one name would silently shadow each other."""
        with pytest.raises(ValueError, match="distinct"):
            SecurityPlan(mode="sasl_ssl", users=(MON, User("mon", "other")))

    def test_unknown_mode_and_mechanism_are_refused(self) -> None:
        """The CLI's values are checked against the supported ones."""
        with pytest.raises(ValueError, match="security mode"):
            plan_from_arguments("tls", None, [], has_authorizer=False)
        with pytest.raises(ValueError, match="SASL mechanism"):
            plan_from_arguments("sasl_ssl", "GSSAPI", [], has_authorizer=False)

    def test_plan_survives_the_state_file(self) -> None:
        """attach() rebuilds the same plan, admin password included, from the state file."""
        plan = SecurityPlan(
            mode="sasl_ssl",
            sasl_mechanism="PLAIN",
            users=(MON,),
            has_authorizer=True,
            admin_password="pw",
        )
        assert SecurityPlan.from_record(json.loads(json.dumps(plan.to_record()))) == plan
        assert SecurityPlan.from_record({}) == SecurityPlan()


class TestClientFiles:
    def test_client_json_uses_only_keys_gapwatch_knows(self, tmp_path: Path) -> None:
        """Every key of client.json is a key of gapwatch's own configuration."""
        for plan in (
            SecurityPlan(mode="ssl"),
            SecurityPlan(mode="sasl_ssl", admin_password="pw"),
            SecurityPlan(mode="sasl_plaintext", sasl_mechanism="PLAIN", admin_password="pw"),
        ):
            settings = _client(plan, plan.identities[0], tmp_path).to_json()
            assert set(settings) <= set(FIELDS_BY_KEY)

    def test_sasl_ssl_admin_settings(self, tmp_path: Path) -> None:
        """SASL_SSL: the admin's user name and password, and the CA to trust."""
        plan = SecurityPlan(mode="sasl_ssl", admin_password="pw")
        assert _client(plan, plan.identities[0], tmp_path).to_json() == {
            "bootstrap_servers": "127.0.0.1:9092",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "admin",
            "sasl_password": "pw",
            "ssl_cafile": str(tmp_path / "tls" / "ca.crt"),
        }

    def test_ssl_settings_name_the_users_certificate(self, tmp_path: Path) -> None:
        """Mutual TLS: each user connects with its own certificate and key."""
        plan = SecurityPlan(mode="ssl", users=(MON,))
        config = _client(plan, MON, tmp_path)
        assert config.to_librdkafka() == {
            "bootstrap.servers": "127.0.0.1:9092",
            "security.protocol": "ssl",
            "ssl.ca.location": str(tmp_path / "tls" / "ca.crt"),
            "ssl.certificate.location": str(tmp_path / "tls" / "mon.crt"),
            "ssl.key.location": str(tmp_path / "tls" / "mon.key"),
        }

    def test_oauthbearer_has_no_password_and_librdkafka_makes_its_own_token(
        self, tmp_path: Path
    ) -> None:
        """kcat -F gets librdkafka's unsecured-JWT switch and the principal."""
        plan = SecurityPlan(mode="sasl_ssl", sasl_mechanism="OAUTHBEARER", admin_password="pw")
        config = _client(plan, plan.identities[0], tmp_path)
        assert "sasl_password" not in config.to_json()
        props = config.to_librdkafka()
        assert props["enable.sasl.oauthbearer.unsecure.jwt"] == "true"
        assert props["sasl.oauthbearer.config"] == "principal=admin"
        assert "sasl.password" not in props

    def test_files_are_private(self, tmp_path: Path) -> None:
        """client.json and client.properties hold the admin's password: owner only."""
        plan = SecurityPlan(mode="sasl_plaintext", admin_password="pw")
        _client(plan, plan.identities[0], tmp_path).write(tmp_path)
        for name in ("client.json", "client.properties"):
            assert (tmp_path / name).stat().st_mode & 0o077 == 0
        assert (
            parse_properties((tmp_path / "client.properties").read_text())["sasl.password"] == "pw"
        )

    def test_unsecured_jwt_is_unsigned_with_subject_and_expiry(self) -> None:
        """alg none, sub, iat and exp; an empty signature."""
        header, claims, signature = unsecured_jwt("mon", issued_at=100, lifetime_s=60).split(".")

        def decode(part: str) -> object:
            return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))

        assert decode(header) == {"alg": "none"}
        assert decode(claims) == {"sub": "mon", "iat": 100, "exp": 160}
        assert signature == ""


class TestCertificates:
    def test_broker_certificate_names_the_loopback_address(self) -> None:
        """Clients check the broker's address, 127.0.0.1, against an IP SAN."""
        ca = CertificateAuthority.create()
        leaf = ca.issue("broker", ip_addresses=["127.0.0.1"])
        leaf.certificate.verify_directly_issued_by(ca.certificate)
        sans = leaf.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert [str(ip) for ip in sans.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]

    def test_launcher_writes_keystores_and_user_certificates(self, tmp_path: Path) -> None:
        """An ssl cluster gets a CA, a keystore per node and a certificate per user."""
        plan = SecurityPlan(mode="ssl", users=(MON,), admin_password="pw")
        launcher = Launcher("java", tmp_path / "jars", tmp_path, "256m", plan)
        specs = plan_nodes(tmp_path, 2, ports=[1, 2, 3, 4])
        launcher.write_node_files(specs, {}, {})
        tls = launcher.tls_files
        ca = x509.load_pem_x509_certificate(tls.ca_certificate.read_bytes())
        for node_id in (1, 2):
            key, cert, _ = pkcs12.load_key_and_certificates(
                tls.keystore(node_id).read_bytes(), KEYSTORE_PASSWORD.encode()
            )
            assert key is not None
            assert cert is not None
            cert.verify_directly_issued_by(ca)
            props = parse_properties(
                (tmp_path / f"node-{node_id}" / "server.properties").read_text()
            )
            assert props["ssl.keystore.location"] == str(tls.keystore(node_id))
        for user in ("admin", "mon"):
            cert = x509.load_pem_x509_certificate(tls.certificate(user).read_bytes())
            assert cert.subject.rfc4514_string() == f"CN={user},O=gapwatch test bed"
            assert tls.key(user).stat().st_mode & 0o077 == 0


class TestCommandLine:
    def test_up_parses_security_options(self) -> None:
        """--security, --sasl-mechanism, repeatable --user and --authorizer."""
        args = _cli.build_parser().parse_args(
            [
                "up",
                "--state-dir",
                "d",
                "--security",
                "sasl_ssl",
                "--sasl-mechanism",
                "PLAIN",
                "--user",
                "a:1",
                "--user",
                "b:2",
                "--authorizer",
            ]
        )
        plan = plan_from_arguments(
            args.security, args.sasl_mechanism, args.users, has_authorizer=args.authorizer
        )
        assert plan == SecurityPlan(
            mode="sasl_ssl",
            sasl_mechanism="PLAIN",
            users=(User("a", "1"), User("b", "2")),
            has_authorizer=True,
        )

    def test_up_defaults_to_plaintext(self) -> None:
        """Without options the cluster is as before: plaintext, no authorizer."""
        args = _cli.build_parser().parse_args(["up", "--state-dir", "d"])
        plan = plan_from_arguments(
            args.security, args.sasl_mechanism, args.users, has_authorizer=args.authorizer
        )
        assert plan == SecurityPlan()

    def test_grammar_offers_exactly_the_supported_choices(self) -> None:
        """The CLI spells the modes and mechanisms out; they must match the plan's."""
        assert _cli.SECURITY_MODES == _security.MODES
        assert _cli.SASL_MECHANISMS == _security.MECHANISMS
