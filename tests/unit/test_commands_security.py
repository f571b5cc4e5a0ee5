"""Every Kafka command takes the monitor's security flags and variables."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gapwatch.cli import build_parser, main
from gapwatch.commands.gaps import bearer_token
from gapwatch.commands.loadgen import config_from_args
from gapwatch.errors import ConfigError, GapwatchError
from gapwatch.kafka.settings import SecuritySettings, client_kwargs
from gapwatch.verifier.config import VerifierConfig, VerifierConfigError


class TestLoadgen:
    def test_security_flags_and_variables_reach_every_client(self, tmp_path: Path) -> None:
        """--sasl-password-file and GAPWATCH_* variables configure the run's clients."""
        path = tmp_path / "pw"
        path.write_text("load-pass\n")
        args = build_parser().parse_args(
            ["loadgen", "--bootstrap-servers", "a:1,b:2", "--security-protocol",
             "SASL_PLAINTEXT", "--sasl-password-file", str(path)]
        )  # fmt: skip
        env = {"GAPWATCH_SASL_MECHANISM": "SCRAM-SHA-512", "GAPWATCH_SASL_USERNAME": "load"}
        config = config_from_args(args, env)
        kwargs = client_kwargs(config.kafka_settings())
        assert kwargs["bootstrap_servers"] == ["a:1", "b:2"]
        assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
        assert kwargs["sasl_plain_username"] == "load"
        assert kwargs["sasl_plain_password"] == "load-pass"

    def test_incomplete_security_is_a_config_error(self) -> None:
        """SASL without credentials is refused before connecting."""
        args = build_parser().parse_args(["loadgen", "--security-protocol", "SASL_SSL"])
        with pytest.raises(GapwatchError, match="sasl_username"):
            config_from_args(args, {})


class TestAudit:
    def test_audit_takes_the_security_flags(self) -> None:
        """gapwatch audit parses the same security flags as the monitor."""
        args = build_parser().parse_args(
            ["audit", "--bootstrap-servers", "h:1", "--topic", "t",
             "--security-protocol", "SSL", "--no-ssl-check-hostname"]
        )  # fmt: skip
        assert args.security_protocol == "SSL"
        assert args.ssl_check_hostname is False


class TestVerifier:
    def test_security_reaches_the_verifier_clients(self) -> None:
        """VerifierConfig.security builds its clients' arguments like the monitor's."""
        config = VerifierConfig(
            group_id="billing",
            bootstrap_servers="k:9093",
            security=SecuritySettings(
                security_protocol="SASL_SSL", sasl_username="v", sasl_password="p"
            ),
        )
        kwargs = client_kwargs(config.kafka_settings())
        assert kwargs["client_id"] == "gapwatch-verifier-billing"
        assert kwargs["security_protocol"] == "SASL_SSL"
        assert kwargs["sasl_plain_password"] == "p"

    def test_invalid_security_names_the_field(self) -> None:
        """A verifier with SASL but no user is refused, naming security.sasl_username."""
        with pytest.raises(VerifierConfigError, match=r"security\.sasl_username"):
            VerifierConfig(
                group_id="g",
                bootstrap_servers="k:1",
                security=SecuritySettings(security_protocol="SASL_SSL"),
            )


class TestGapsToken:
    def parse(self, *argv: str) -> argparse.Namespace:
        return build_parser().parse_args(["gaps", *argv])

    def test_token_file_keeps_the_token_off_the_command_line(self, tmp_path: Path) -> None:
        """--token-file (or GAPWATCH_HTTP_TOKEN_FILE) is read; the flag wins over variables;
        one source giving a token and a token file is refused."""
        path = tmp_path / "token"
        path.write_text("file-token-0123456789\n")
        assert bearer_token(self.parse("--token-file", str(path)), {}) == "file-token-0123456789"
        env = {"GAPWATCH_HTTP_TOKEN_FILE": str(path), "GAPWATCH_HTTP_TOKEN": "env-token"}
        with pytest.raises(ConfigError, match="not both"):
            bearer_token(self.parse(), env)
        assert bearer_token(self.parse(), {"GAPWATCH_HTTP_TOKEN_FILE": str(path)}) == (
            "file-token-0123456789"
        )
        assert bearer_token(self.parse(), {"GAPWATCH_HTTP_TOKEN": "env-token"}) == "env-token"
        assert bearer_token(self.parse("--token", "flag-token"), env) == "flag-token"
        assert bearer_token(self.parse(), {}) is None

    def test_both_flags_or_a_missing_file_exit_2(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Two token sources, or an unreadable file, are refused before any request."""
        with pytest.raises(ConfigError, match="not both"):
            bearer_token(self.parse("--token", "a", "--token-file", "b"), {})
        assert main(["gaps", "--token-file", str(tmp_path / "gone")]) == 2
        assert "token_file: cannot read" in capsys.readouterr().err
