"""Configuration of the monitor: merge order, validation messages, the reference file."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from gapwatch.errors import ConfigError
from gapwatch.kafka.settings import SecuritySettings, client_kwargs
from gapwatch.monitor.config import MonitorConfig
from gapwatch.monitor.config_sources import (
    FIELDS,
    add_arguments,
    add_security_arguments,
    load_config,
    load_security,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "gapwatch.example.yaml"


def parse_flags(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


class TestPrecedence:
    def test_flags_beat_environment_beat_file_beat_defaults(self, tmp_path: Path) -> None:
        """Each key takes its value from the highest source that sets it."""
        file = tmp_path / "gw.yaml"
        file.write_text(
            "bootstrap_servers: f:1\ntopic: [from-file]\ngrace_period: 1\n"
            "group_id: file-group\ncheckpoint_interval: 7\n"
        )
        env = {
            "GAPWATCH_CONFIG": str(file),
            "GAPWATCH_GRACE_PERIOD": "2",
            "GAPWATCH_GROUP_ID": "env-group",
        }
        config = load_config(parse_flags("--grace-period", "3"), env)
        assert config.tracker.grace_period == 3.0
        assert config.watch.group_id == "env-group"
        assert config.checkpoints.interval == 7.0
        assert config.watch.topics == ("from-file",)
        assert config.http.port == MonitorConfig().http.port

    def test_repeated_topic_flags_replace_the_file_list(self, tmp_path: Path) -> None:
        """Lists are replaced, not concatenated, by a higher source."""
        file = tmp_path / "gw.yaml"
        file.write_text("bootstrap_servers: [a:1, b:2]\ntopic: [x, y]\n")
        flags = parse_flags("--config", str(file), "--topic", "p", "--topic", "q")
        config = load_config(flags, {})
        assert config.watch.topics == ("p", "q")
        assert config.kafka.bootstrap_servers == ("a:1", "b:2")

    def test_comma_separated_environment_lists(self) -> None:
        """GAPWATCH_BOOTSTRAP_SERVERS takes the same comma syntax as Kafka's tools."""
        env = {"GAPWATCH_BOOTSTRAP_SERVERS": "h1:9092, h2:9093", "GAPWATCH_TOPIC": "t"}
        config = load_config({}, env)
        assert config.kafka.bootstrap_servers == ("h1:9092", "h2:9093")

    def test_boolean_flag_can_turn_off_an_environment_true(self) -> None:
        """--no-allow-compacted overrides GAPWATCH_ALLOW_COMPACTED=true."""
        env = {
            "GAPWATCH_BOOTSTRAP_SERVERS": "h:1",
            "GAPWATCH_TOPIC": "t",
            "GAPWATCH_ALLOW_COMPACTED": "yes",
        }
        assert load_config({}, env).watch.allow_compacted is True
        flags = parse_flags("--no-allow-compacted")
        assert load_config(flags, env).watch.allow_compacted is False

    def test_reading_batches_directly_is_on_unless_turned_off(self) -> None:
        """read_batches_directly defaults to true; the flag or the variable turn it off."""
        env = {"GAPWATCH_BOOTSTRAP_SERVERS": "h:1", "GAPWATCH_TOPIC": "t"}
        assert load_config({}, env).kafka.read_batches_directly is True
        off = {**env, "GAPWATCH_READ_BATCHES_DIRECTLY": "false"}
        assert load_config({}, off).kafka.read_batches_directly is False
        flags = parse_flags("--no-read-batches-directly")
        assert load_config(flags, env).kafka.read_batches_directly is False

    def test_fetch_sessions_are_on_unless_turned_off(self) -> None:
        """fetch_sessions defaults to true; the flag, the variable or the file turn it off."""
        env = {"GAPWATCH_BOOTSTRAP_SERVERS": "h:1", "GAPWATCH_TOPIC": "t"}
        assert load_config({}, env).kafka.fetch_sessions is True
        off = {**env, "GAPWATCH_FETCH_SESSIONS": "false"}
        assert load_config({}, off).kafka.fetch_sessions is False
        flags = parse_flags("--no-fetch-sessions")
        assert load_config(flags, env).kafka.fetch_sessions is False


class TestValidation:
    def test_error_names_key_and_environment_variable(self) -> None:
        """A bad value points at the variable that set it."""
        env = {"GAPWATCH_BOOTSTRAP_SERVERS": "h:1", "GAPWATCH_TOPIC": "t"}
        with pytest.raises(ConfigError, match=r"grace_period \(from GAPWATCH_GRACE_PERIOD\)"):
            load_config({}, {**env, "GAPWATCH_GRACE_PERIOD": "soon"})

    def test_range_error_names_the_flag(self) -> None:
        """Range checks done by the typed section still report the source."""
        flags = parse_flags("--bootstrap-servers", "h:1", "--topic", "t", "--grace-period", "-1")
        with pytest.raises(ConfigError) as info:
            load_config(flags, {})
        assert info.value.key == "grace_period"
        assert info.value.source == "--grace-period"

    def test_fetch_min_bytes_default_and_range(self) -> None:
        """64 KiB by default (see docs/monitor.md), settable, and at least one byte."""
        env = {"GAPWATCH_BOOTSTRAP_SERVERS": "h:1", "GAPWATCH_TOPIC": "t"}
        assert load_config({}, env).kafka.fetch_min_bytes == 64 * 1024
        assert load_config({}, {**env, "GAPWATCH_FETCH_MIN_BYTES": "1"}).kafka.fetch_min_bytes == 1
        flags = parse_flags("--bootstrap-servers", "h:1", "--topic", "t", "--fetch-min-bytes", "0")
        with pytest.raises(ConfigError) as info:
            load_config(flags, {})
        assert info.value.key == "fetch_min_bytes"

    def test_metrics_granularity_default_and_choices(self) -> None:
        """Per partition by default (as before), "topic" from flag or environment, and
        nothing else."""
        env = {"GAPWATCH_BOOTSTRAP_SERVERS": "h:1", "GAPWATCH_TOPIC": "t"}
        assert load_config({}, env).http.metrics_granularity == "partition"
        topic_env = {**env, "GAPWATCH_METRICS_GRANULARITY": "topic"}
        assert load_config({}, topic_env).http.metrics_granularity == "topic"
        flags = parse_flags("--metrics-granularity", "topic")
        assert load_config(flags, env).http.metrics_granularity == "topic"
        with pytest.raises(ConfigError, match=r"metrics_granularity.*partition, topic"):
            load_config(parse_flags("--metrics-granularity", "broker"), env)

    def test_missing_bootstrap_servers(self) -> None:
        """bootstrap_servers is required."""
        with pytest.raises(ConfigError, match="bootstrap_servers"):
            load_config(parse_flags("--topic", "t"), {})

    def test_topic_and_pattern_are_exclusive(self) -> None:
        """Exactly one of topic / topic_pattern."""
        flags = parse_flags("--bootstrap-servers", "h:1", "--topic", "t", "--topic-pattern", "x")
        with pytest.raises(ConfigError, match="topic"):
            load_config(flags, {})
        with pytest.raises(ConfigError, match="topic"):
            load_config(parse_flags("--bootstrap-servers", "h:1"), {})

    def test_bad_regex_is_reported(self) -> None:
        """An invalid topic_pattern is caught before connecting."""
        flags = parse_flags("--bootstrap-servers", "h:1", "--topic-pattern", "(")
        with pytest.raises(ConfigError, match="topic_pattern"):
            load_config(flags, {})

    def test_bad_server_address(self) -> None:
        """A server without a port is rejected with the offending entry."""
        with pytest.raises(ConfigError, match="'nohost' is not HOST:PORT"):
            load_config(parse_flags("--bootstrap-servers", "nohost", "--topic", "t"), {})

    def test_choice_is_checked(self) -> None:
        """start_from only accepts earliest/latest."""
        flags = parse_flags("--bootstrap-servers", "h:1", "--topic", "t", "--start-from", "now")
        with pytest.raises(ConfigError, match=r"start_from.*earliest, latest"):
            load_config(flags, {})

    def test_unknown_file_key_is_an_error(self, tmp_path: Path) -> None:
        """A typo in the file must not silently fall back to a default."""
        file = tmp_path / "gw.yaml"
        file.write_text("bootstrap_servers: h:1\ntopic: t\ngrace_periode: 3\n")
        with pytest.raises(ConfigError, match=r"grace_periode.*not a known key"):
            load_config(parse_flags("--config", str(file)), {})

    def test_sasl_needs_credentials(self) -> None:
        """SASL without a password is refused, naming the key."""
        env = {
            "GAPWATCH_BOOTSTRAP_SERVERS": "h:1",
            "GAPWATCH_TOPIC": "t",
            "GAPWATCH_SECURITY_PROTOCOL": "SASL_SSL",
            "GAPWATCH_SASL_MECHANISM": "SCRAM-SHA-512",
            "GAPWATCH_SASL_USERNAME": "u",
        }
        with pytest.raises(ConfigError, match="sasl_password"):
            load_config({}, env)
        config = load_config({}, {**env, "GAPWATCH_SASL_PASSWORD": "p"})
        assert config.kafka.security.sasl_mechanism == "SCRAM-SHA-512"

    def test_secrets_stay_out_of_repr(self) -> None:
        """Passwords and tokens never reach a log line through repr()."""
        text = repr(SecuritySettings(sasl_password="hunter2", ssl_key_password="k"))
        assert "hunter2" not in text
        assert "k'" not in text

    def test_short_token_is_refused(self) -> None:
        """A bearer token shorter than 16 characters is refused."""
        env = {"GAPWATCH_BOOTSTRAP_SERVERS": "h:1", "GAPWATCH_TOPIC": "t"}
        with pytest.raises(ConfigError, match="http_token"):
            load_config({}, {**env, "GAPWATCH_HTTP_TOKEN": "short"})


class TestTokenFile:
    BASE = {"GAPWATCH_BOOTSTRAP_SERVERS": "h:1", "GAPWATCH_TOPIC": "t"}
    TOKEN = "from-a-file-0123456789"

    def token_file(self, tmp_path: Path, text: str) -> Path:
        path = tmp_path / "token"
        path.write_text(text)
        return path

    def test_flag_reads_the_token_from_a_file(self, tmp_path: Path) -> None:
        """--http-token-file sets http_token to the file's content, the newline dropped;
        the token itself stays out of the config's repr."""
        path = self.token_file(tmp_path, self.TOKEN + "\n")
        config = load_config(parse_flags("--http-token-file", str(path)), self.BASE)
        assert config.http.token == self.TOKEN
        assert self.TOKEN not in repr(config)

    def test_environment_and_yaml_name_a_file_too(self, tmp_path: Path) -> None:
        """GAPWATCH_HTTP_TOKEN_FILE and the YAML key http_token_file work like the flag."""
        path = self.token_file(tmp_path, self.TOKEN)
        by_env = load_config({}, {**self.BASE, "GAPWATCH_HTTP_TOKEN_FILE": str(path)})
        yaml_file = tmp_path / "gw.yaml"
        yaml_file.write_text(f"http-token-file: {path}\n")
        by_yaml = load_config(parse_flags("--config", str(yaml_file)), self.BASE)
        assert by_env.http.token == by_yaml.http.token == self.TOKEN

    def test_file_and_value_are_one_setting_for_precedence(self, tmp_path: Path) -> None:
        """A token file given as a flag beats a token in the environment, and the reverse."""
        path = self.token_file(tmp_path, self.TOKEN)
        env = {**self.BASE, "GAPWATCH_HTTP_TOKEN": "from-the-environment-0123"}
        file_wins = load_config(parse_flags("--http-token-file", str(path)), env)
        env = {**self.BASE, "GAPWATCH_HTTP_TOKEN_FILE": str(path)}
        value_wins = load_config(parse_flags("--http-token", "from-a-flag-0123456789"), env)
        assert file_wins.http.token == self.TOKEN
        assert value_wins.http.token == "from-a-flag-0123456789"

    def test_one_source_may_not_give_both(self, tmp_path: Path) -> None:
        """The token and a token file from the same source are refused as ambiguous."""
        path = self.token_file(tmp_path, self.TOKEN)
        flags = parse_flags("--http-token", "x" * 20, "--http-token-file", str(path))
        with pytest.raises(ConfigError, match="http_token or http_token_file, not both"):
            load_config(flags, self.BASE)

    def test_unreadable_empty_or_short_file_is_named(self, tmp_path: Path) -> None:
        """A missing or empty file is an error naming the file key and its source; a short
        token from a file is refused naming the flag that gave it."""
        missing = tmp_path / "nope"
        with pytest.raises(ConfigError, match=r"http_token_file \(from --http-token-file\)"):
            load_config(parse_flags("--http-token-file", str(missing)), self.BASE)
        empty = self.token_file(tmp_path, "\n")
        with pytest.raises(ConfigError, match="is empty"):
            load_config({}, {**self.BASE, "GAPWATCH_HTTP_TOKEN_FILE": str(empty)})
        short = self.token_file(tmp_path, "short")
        with pytest.raises(ConfigError, match=r"http_token \(from --http-token-file\)"):
            load_config(parse_flags("--http-token-file", str(short)), self.BASE)


class TestReferenceFile:
    def test_example_file_loads_and_documents_every_key(self) -> None:
        """deploy/gapwatch.example.yaml mentions every key and is itself valid."""
        text = EXAMPLE.read_text()
        for spec in FIELDS:
            assert re.search(rf"^#? ?{spec.key}:", text, re.MULTILINE), spec.key
        config = load_config(parse_flags("--config", str(EXAMPLE)), {})
        assert config.watch.topics == ("orders", "payments")
        assert config.tracker.grace_period == MonitorConfig().tracker.grace_period

    def test_example_file_states_the_default_limits_of_kept_gaps(self) -> None:
        """The gap holders' count limits in the reference file are the defaults, and the
        fleet history's default is the one docs/operations.md budgets (50,000 gaps)."""
        example = load_config(parse_flags("--config", str(EXAMPLE)), {})
        defaults = MonitorConfig()
        assert example.gap_store.closed_limit == defaults.gap_store.closed_limit == 10_000
        assert example.gap_log.history_limit == defaults.gap_log.history_limit == 50_000
        assert example.events.buffer == defaults.events.buffer == 10_000


class TestSecuritySources:
    """Security keys: files and variables instead of flags, secrets masked everywhere."""

    BASE = {"GAPWATCH_BOOTSTRAP_SERVERS": "h:1", "GAPWATCH_TOPIC": "t"}

    def test_password_file_from_the_environment(self, tmp_path: Path) -> None:
        """GAPWATCH_SASL_PASSWORD_FILE keeps the password off the command line."""
        path = tmp_path / "pw"
        path.write_text("from-file\n")
        env = {
            **self.BASE,
            "GAPWATCH_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "GAPWATCH_SASL_MECHANISM": "SCRAM-SHA-256",
            "GAPWATCH_SASL_USERNAME": "mon",
            "GAPWATCH_SASL_PASSWORD_FILE": str(path),
        }
        config = load_config({}, env)
        assert config.kafka.security.sasl_password_file == path
        assert client_kwargs(config.kafka)["sasl_plain_password"] == "from-file"

    def test_oauthbearer_keys_from_flags(self, tmp_path: Path) -> None:
        """The OAUTHBEARER mechanism, token file and lifetime are flags like any other."""
        token = tmp_path / "token"
        token.write_text("t\n")
        flags = parse_flags(
            "--bootstrap-servers", "h:1", "--topic", "t",
            "--security-protocol", "SASL_SSL", "--sasl-mechanism", "OAUTHBEARER",
            "--sasl-oauth-token-file", str(token), "--sasl-oauth-token-lifetime", "900",
        )  # fmt: skip
        security = load_config(flags, {}).kafka.security
        assert security.sasl_mechanism == "OAUTHBEARER"
        assert security.sasl_oauth_token_file == token
        assert security.sasl_oauth_token_lifetime == 900.0

    def test_secret_values_never_reach_repr_or_errors(self, tmp_path: Path) -> None:
        """A password given any way is masked in the config's repr and in config errors."""
        config = load_config(
            parse_flags(
                "--bootstrap-servers", "h:1", "--topic", "t",
                "--security-protocol", "SASL_SSL", "--sasl-username", "u",
                "--sasl-password", "hunter2", "--ssl-key-password", "keypass2",
            ),
            {},
        )  # fmt: skip
        assert "hunter2" not in repr(config)
        assert "keypass2" not in repr(config)
        file = tmp_path / "gw.yaml"
        file.write_text("bootstrap_servers: h:1\ntopic: t\nsasl_password: [hunter2]\n")
        with pytest.raises(ConfigError) as caught:
            load_config(parse_flags("--config", str(file)), {})
        assert "sasl_password" in str(caught.value)
        assert "hunter2" not in str(caught.value)

    def test_load_security_alone_names_the_source(self, tmp_path: Path) -> None:
        """Other commands merge the same keys; errors name the flag or variable."""
        parser = argparse.ArgumentParser()
        add_security_arguments(parser)
        flags = parser.parse_args(["--security-protocol", "SASL_SSL", "--sasl-username", "u"])
        with pytest.raises(ConfigError, match=r"sasl_password: is required"):
            load_security(flags, {})
        security = load_security(flags, {"GAPWATCH_SASL_PASSWORD": "p"})
        assert security.sasl_username == "u"
        assert security.read_sasl_password() is not None
        with pytest.raises(ConfigError, match=r"sasl_password_file \(from --sasl-password-file\)"):
            load_security(parser.parse_args(["--sasl-password-file", str(tmp_path / "gone")]), {})
