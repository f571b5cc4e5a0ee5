"""The monitor's mirror settings: flags, files and clear errors for bad values."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from gapwatch.errors import ConfigError
from gapwatch.monitor.config_sources import add_arguments, load_config

BASE = {"GAPWATCH_BOOTSTRAP_SERVERS": "target:9092", "GAPWATCH_TOPIC": "east.orders"}


def flags(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_repeated_sources_with_several_servers_each() -> None:
    config = load_config(
        flags("--mirror-source", "east=e1:9092,e2:9092", "--mirror-source", "west=w1:9092"),
        BASE,
    )
    sources = config.mirror.sources
    assert [(s.alias, s.bootstrap_servers) for s in sources] == [
        ("east", ("e1:9092", "e2:9092")),
        ("west", ("w1:9092",)),
    ]
    assert sources[0].security.security_protocol == "PLAINTEXT"


def test_source_security_comes_from_a_client_json_file(tmp_path: Path) -> None:
    """The test bed's client.json: its security keys apply, its servers do not."""
    path = tmp_path / "client.json"
    path.write_text(
        json.dumps(
            {
                "bootstrap_servers": "elsewhere:1",
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "SCRAM-SHA-256",
                "sasl_username": "admin",
                "sasl_password": "s3cret-s3cret",
            }
        )
    )
    config = load_config(
        flags("--mirror-source", "east=e1:9092", "--mirror-source-config", f"east={path}"),
        BASE,
    )
    source = config.mirror.sources[0]
    assert source.bootstrap_servers == ("e1:9092",)
    assert source.security.sasl_username == "admin"
    password = source.security.read_sasl_password()
    assert password is not None
    assert password.reveal() == "s3cret-s3cret"
    assert "s3cret" not in repr(config)


def test_sources_from_the_environment() -> None:
    config = load_config({}, {**BASE, "GAPWATCH_MIRROR_SOURCE": "east=e1:9092"})
    assert config.mirror.aliases == ("east",)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--mirror-source", "east"], r"mirror_source \(from --mirror-source\): 'east' is not"),
        (["--mirror-source", "east=nohostport"], "mirror_source: east: bootstrap_servers"),
        (["--mirror-source", "a b=h:1"], "is not an MM2 cluster alias"),
        (["--mirror-source", "e=h:1", "--mirror-source", "e=h:2"], "is given twice"),
        (
            ["--mirror-source", "e=h:1", "--mirror-source-config", "w=/nope"],
            "'w' is not an alias given in mirror_source",
        ),
        (["--mirror-source", "e=h:1", "--mirror-source-config", "e=/nope"], "cannot read"),
        (["--replication-policy", "prefix"], "must be one of default, identity"),
        (
            [
                "--mirror-source",
                "e=h:1",
                "--mirror-source",
                "w=h:2",
                "--replication-policy",
                "identity",
            ],
            "allows only one mirror_source",
        ),
        (["--mirror-lag-interval", "0"], "mirror_lag_interval"),
        (["--mirror-lookup-concurrency", "0"], "mirror_lookup_concurrency"),
    ],
)
def test_bad_values_are_refused_naming_the_key(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(flags(*argv), BASE)


def test_a_source_file_with_unusable_security_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "client.yaml"
    path.write_text("security_protocol: SASL_SSL\nsasl_mechanism: PLAIN\n")
    with pytest.raises(ConfigError, match="sasl_username"):
        load_config(flags("--mirror-source", "e=h:1", "--mirror-source-config", f"e={path}"), BASE)
