"""Kafka client security: validation, and the aiokafka arguments of every mode."""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path
from typing import Any

import pytest
from aiokafka.abc import AbstractTokenProvider

from gapwatch.errors import ConfigError
from gapwatch.kafka.oauth import CachingTokenProvider, CallableTokenProvider
from gapwatch.kafka.secret import Secret
from gapwatch.kafka.settings import KafkaSettings, SecuritySettings, client_kwargs

TLS = Path(__file__).resolve().parents[1] / "data" / "tls"
KEY_PASSWORD = "unit-test-key-pass"
OAUTH: dict[str, Any] = {"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"}


def kwargs_of(security: SecuritySettings) -> dict[str, object]:
    security.validate()
    return client_kwargs(KafkaSettings(bootstrap_servers=("h:9093",), security=security))


def secret_file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text + "\n")
    return path


class TestValidation:
    def test_sasl_password_inline_or_file_but_not_both(self, tmp_path: Path) -> None:
        """SCRAM/PLAIN take exactly one of sasl_password and sasl_password_file."""
        base = SecuritySettings(security_protocol="SASL_SSL", sasl_username="mon")
        with pytest.raises(ConfigError, match=r"sasl_password: is required .*sasl_password_file"):
            base.validate()
        path = secret_file(tmp_path, "pw", "p")
        both = SecuritySettings(
            security_protocol="SASL_SSL", sasl_username="mon", sasl_password="p",
            sasl_password_file=path,
        )  # fmt: skip
        with pytest.raises(ConfigError, match="sasl_password_file: give only one of"):
            both.validate()
        missing = SecuritySettings(
            security_protocol="SASL_SSL", sasl_username="mon",
            sasl_password_file=tmp_path / "nope",
        )  # fmt: skip
        with pytest.raises(ConfigError, match=r"sasl_password_file: file .* does not exist"):
            missing.validate()

    def test_sasl_needs_a_username_except_oauthbearer(self) -> None:
        """A username is required by PLAIN/SCRAM; OAUTHBEARER's identity is the token."""
        with pytest.raises(ConfigError, match="sasl_username"):
            SecuritySettings(security_protocol="SASL_PLAINTEXT", sasl_password="p").validate()
        SecuritySettings(
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="OAUTHBEARER",
            sasl_oauth_token_command="print-token",
        ).validate()

    def test_oauthbearer_takes_exactly_one_token_source(self, tmp_path: Path) -> None:
        """None or two of callable, command and file are refused, naming the keys."""
        with pytest.raises(ConfigError, match=r"sasl_oauth_token_provider: is required"):
            SecuritySettings(**OAUTH).validate()
        token = secret_file(tmp_path, "token", "t")
        with pytest.raises(ConfigError, match="give only one of sasl_oauth_token_command, sasl"):
            SecuritySettings(
                **OAUTH,
                sasl_oauth_token_command="x",
                sasl_oauth_token_file=token,
            ).validate()
        with pytest.raises(ConfigError, match="sasl_oauth_token_lifetime"):
            SecuritySettings(
                **OAUTH,
                sasl_oauth_token_file=token,
                sasl_oauth_token_lifetime=0,
            ).validate()
        with pytest.raises(ConfigError, match="sasl_oauth_token_command: must not be empty"):
            SecuritySettings(**OAUTH, sasl_oauth_token_command=" ").validate()

    def test_token_source_without_oauthbearer_is_refused(self) -> None:
        """A token command with another mechanism is a mistake, not silently ignored."""
        with pytest.raises(ConfigError, match="sasl_oauth_token_command: needs sasl_mechanism"):
            SecuritySettings(
                security_protocol="SASL_SSL",
                sasl_username="u",
                sasl_password="p",
                sasl_oauth_token_command="print-token",
            ).validate()

    def test_key_password_inline_or_file_but_not_both(self, tmp_path: Path) -> None:
        """The client key's password comes from one place."""
        with pytest.raises(ConfigError, match="ssl_key_password_file"):
            SecuritySettings(
                ssl_key_password="a", ssl_key_password_file=secret_file(tmp_path, "k", "a")
            ).validate()

    def test_passwords_are_secrets_and_settings_stay_masked(self) -> None:
        """Inline passwords become Secrets; repr shows neither them nor the token command."""
        settings = SecuritySettings(
            security_protocol="SASL_SSL",
            sasl_mechanism="OAUTHBEARER",
            sasl_password="hunter2",
            ssl_key_password="keypass",
            sasl_oauth_token_command="get-token --secret s3cr3t",
            sasl_oauth_token_provider=lambda: "tok",
        )
        assert isinstance(settings.sasl_password, Secret)
        assert isinstance(settings.ssl_key_password, Secret)
        text = repr(KafkaSettings(security=settings)) + str(settings)
        for hidden in ("hunter2", "keypass", "s3cr3t", "lambda"):
            assert hidden not in text
        assert settings == SecuritySettings(
            security_protocol="SASL_SSL",
            sasl_mechanism="OAUTHBEARER",
            sasl_password=Secret("hunter2"),
            ssl_key_password="keypass",
            sasl_oauth_token_command="get-token --secret s3cr3t",
        )


class TestClientKwargs:
    def test_plaintext_sets_no_security_arguments(self) -> None:
        """PLAINTEXT: servers, client id and the protocol only."""
        assert kwargs_of(SecuritySettings()) == {
            "bootstrap_servers": ["h:9093"],
            "client_id": "gapwatch-monitor",
            "security_protocol": "PLAINTEXT",
        }

    def test_ssl_with_a_private_ca_checks_hostnames(self) -> None:
        """SSL: a context trusting the CA file, verifying certificates and hostnames."""
        kwargs = kwargs_of(SecuritySettings(security_protocol="SSL", ssl_cafile=TLS / "client.pem"))
        context = kwargs["ssl_context"]
        assert isinstance(context, ssl.SSLContext)
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname
        assert "sasl_mechanism" not in kwargs

    def test_hostname_check_can_be_turned_off(self) -> None:
        """ssl_check_hostname=False reaches the context (port-forwarded brokers)."""
        kwargs = kwargs_of(SecuritySettings(security_protocol="SSL", ssl_check_hostname=False))
        context = kwargs["ssl_context"]
        assert isinstance(context, ssl.SSLContext)
        assert not context.check_hostname

    def test_mutual_tls_with_an_encrypted_key_and_its_password_file(self, tmp_path: Path) -> None:
        """The client certificate loads with the key password read from its file."""
        security = SecuritySettings(
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="mon",
            sasl_password="p",
            ssl_cafile=TLS / "client.pem",
            ssl_certfile=TLS / "client.pem",
            ssl_keyfile=TLS / "client.key",
            ssl_key_password_file=secret_file(tmp_path, "keypw", KEY_PASSWORD),
        )
        assert isinstance(kwargs_of(security)["ssl_context"], ssl.SSLContext)

    def test_wrong_or_missing_key_password_is_a_config_error_not_a_prompt(self) -> None:
        """A wrong password fails naming the key; a missing one fails instead of prompting."""
        for password in ("wrong", None):
            security = SecuritySettings(
                security_protocol="SSL",
                ssl_certfile=TLS / "client.pem",
                ssl_keyfile=TLS / "client.key",
                ssl_key_password=password,
            )
            with pytest.raises(ConfigError, match=r"ssl_keyfile: cannot load the client cert"):
                kwargs_of(security)

    def test_unusable_ca_file_names_ssl_cafile(self) -> None:
        """A CA file that holds no certificate fails naming ssl_cafile."""
        security = SecuritySettings(security_protocol="SSL", ssl_cafile=TLS / "README.md")
        with pytest.raises(ConfigError, match="ssl_cafile: cannot load the CA file"):
            kwargs_of(security)

    @pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
    def test_password_file_is_read_when_a_client_is_built(
        self, tmp_path: Path, mechanism: str
    ) -> None:
        """PLAIN/SCRAM get user and password; a rotated file reaches the next client."""
        path = secret_file(tmp_path, "pw", "first")
        security = SecuritySettings(
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism=mechanism,  # type: ignore[arg-type]
            sasl_username="mon",
            sasl_password_file=path,
        )
        kwargs = kwargs_of(security)
        assert kwargs["sasl_mechanism"] == mechanism
        assert kwargs["sasl_plain_username"] == "mon"
        assert kwargs["sasl_plain_password"] == "first"
        path.write_text("second\n")
        assert kwargs_of(security)["sasl_plain_password"] == "second"

    def test_oauthbearer_sources_become_token_providers(self, tmp_path: Path) -> None:
        """Callable, command and file each give aiokafka an AbstractTokenProvider."""
        cases = [
            (SecuritySettings(**OAUTH, sasl_oauth_token_provider=lambda: "t"),
             CallableTokenProvider),
            (SecuritySettings(**OAUTH, sasl_oauth_token_command="print-token"),
             CachingTokenProvider),
            (SecuritySettings(**OAUTH, sasl_oauth_token_file=secret_file(tmp_path, "t", "t")),
             CachingTokenProvider),
        ]  # fmt: skip
        for security, kind in cases:
            kwargs = kwargs_of(security)
            assert kwargs["sasl_mechanism"] == "OAUTHBEARER"
            provider = kwargs["sasl_oauth_token_provider"]
            assert isinstance(provider, kind)
            assert isinstance(provider, AbstractTokenProvider)
            assert "sasl_plain_password" not in kwargs

    def test_clients_of_one_settings_share_one_token_provider(self) -> None:
        """Every client built from one settings object uses one token cache; a changed copy
        gets its own."""
        security = SecuritySettings(**OAUTH, sasl_oauth_token_command="print-token")
        kafka = KafkaSettings(bootstrap_servers=("h:1",), security=security)
        first = client_kwargs(kafka)["sasl_oauth_token_provider"]
        assert client_kwargs(kafka, suffix="-admin")["sasl_oauth_token_provider"] is first
        changed = dataclasses.replace(security, sasl_oauth_token_lifetime=60.0)
        assert changed.token_provider() is not first
        assert dataclasses.replace(security) == security

    def test_oauth_extensions_reach_the_provider(self) -> None:
        """KEY=VALUE extensions are what the provider hands aiokafka; malformed ones are
        refused when validating."""
        security = SecuritySettings(
            **OAUTH,
            sasl_oauth_token_command="print-token",
            sasl_oauth_extensions=("logicalCluster=lkc-1", "identityPoolId=pool-a"),
        )
        provider = kwargs_of(security)["sasl_oauth_token_provider"]
        assert provider.extensions() == {"logicalCluster": "lkc-1", "identityPoolId": "pool-a"}
        for bad in ("noequals", "auth=x", "key1=x", "k=\x01"):
            with pytest.raises(ConfigError, match="sasl_oauth_extensions"):
                dataclasses.replace(security, sasl_oauth_extensions=(bad,)).validate()
