"""The test bed's Kafka versions: the tested matrix, per-version broker config, fetching all."""

from __future__ import annotations

from pathlib import Path

import pytest

from gapwatch.testing import _cli, kafka
from gapwatch.testing._config import (
    CACHE_ENV,
    DEFAULT_KAFKA_VERSION,
    KAFKA_3X_VERSION,
    NEWEST_KAFKA_VERSION,
    TESTED_KAFKA_VERSIONS,
    VERSION_ENV,
    plan_nodes,
    release_of,
    server_properties,
)
from gapwatch.testing._maven import MARKER_NAME

SHARE_KEYS = {
    "share.coordinator.state.topic.num.partitions",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
}


class TestTestedVersions:
    def test_matrix_is_a_3x_release_the_default_and_the_newest_oldest_first(self) -> None:
        """The matrix pins a 3.x and a newer 4.x release besides the default, in order."""
        assert TESTED_KAFKA_VERSIONS == (
            KAFKA_3X_VERSION,
            DEFAULT_KAFKA_VERSION,
            NEWEST_KAFKA_VERSION,
        )
        assert release_of(KAFKA_3X_VERSION)[0] == 3
        assert release_of(NEWEST_KAFKA_VERSION)[0] == 4
        releases = [release_of(v) for v in TESTED_KAFKA_VERSIONS]
        assert releases == sorted(set(releases))

    @pytest.mark.parametrize(
        ("version", "release"),
        [("3.9.1", (3, 9, 1)), ("4.4.0", (4, 4, 0)), ("10.0.12-rc1", (10, 0, 12))],
    )
    def test_release_is_compared_as_numbers(
        self, version: str, release: tuple[int, int, int]
    ) -> None:
        """``10.0.12`` is newer than ``4.4.0``; a pre-release suffix is ignored."""
        assert release_of(version) == release

    def test_malformed_version_has_no_release(self) -> None:
        with pytest.raises(ValueError, match="does not look like"):
            release_of("4.4")


class TestConfigPerVersion:
    def test_3x_config_leaves_out_share_group_settings(self, tmp_path: Path) -> None:
        """Kafka 3.x has no share groups: their settings are not written for it."""
        nodes = plan_nodes(tmp_path, 1, ports=[9001, 9101])
        props = server_properties(nodes[0], nodes, version="3.9.1")
        assert SHARE_KEYS.isdisjoint(props)
        assert props["offsets.topic.num.partitions"] == "4"
        assert props["controller.quorum.voters"] == "1@127.0.0.1:9101"

    @pytest.mark.parametrize("version", ["4.0.1", DEFAULT_KAFKA_VERSION, "4.4.0"])
    def test_4x_config_sets_share_group_settings(self, tmp_path: Path, version: str) -> None:
        nodes = plan_nodes(tmp_path, 1, ports=[9001, 9101])
        assert SHARE_KEYS.issubset(server_properties(nodes[0], nodes, version=version))

    def test_overrides_are_written_whatever_the_version(self, tmp_path: Path) -> None:
        """Only the test bed's own defaults are filtered; what a user sets is kept."""
        nodes = plan_nodes(tmp_path, 1, ports=[9001, 9101])
        key = "share.coordinator.state.topic.num.partitions"
        props = server_properties(nodes[0], nodes, version="3.9.1", broker_overrides={key: 2})
        assert props[key] == "2"


class TestFetchMatrix:
    def test_matrix_flag_parses_and_excludes_one_version(self) -> None:
        parser = _cli.build_parser()
        assert parser.parse_args(["fetch", "--matrix"]).matrix
        assert not parser.parse_args(["fetch"]).matrix
        with pytest.raises(SystemExit):
            parser.parse_args(["fetch", "--matrix", "--kafka-version", "4.4.0"])

    def test_matrix_fetches_the_chosen_default_and_every_tested_version(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """``fetch --matrix`` covers the version tests run by default (here one chosen by
        the environment) and the matrix, each once; cached versions need no Maven."""
        chosen = "4.2.0"
        for version in (chosen, *TESTED_KAFKA_VERSIONS):
            (tmp_path / version).mkdir()
            (tmp_path / version / MARKER_NAME).write_text("")
        monkeypatch.setenv(CACHE_ENV, str(tmp_path))
        monkeypatch.setenv(VERSION_ENV, chosen)
        monkeypatch.setenv("PATH", "")  # no mvn: a download attempt would fail
        assert kafka.main(["fetch", "--matrix"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [line.split()[1] for line in lines] == [chosen, *TESTED_KAFKA_VERSIONS]
        assert all(" jars cached in " in line for line in lines)
