"""The mirror test bed's pure parts: mm2.properties, settings checks, state file, jars, CLI."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gapwatch.testing import _maven
from gapwatch.testing._config import DEFAULT_KAFKA_VERSION, jvm_command
from gapwatch.testing._errors import ClusterStateError
from gapwatch.testing._mirror_cli import build_parser
from gapwatch.testing._mirror_config import (
    MIRROR_MAKER_MAIN,
    PROBE_TOPIC,
    MirrorFiles,
    MirrorSettings,
    mm2_properties,
    render_mm2_properties,
)
from gapwatch.testing._mirror_state import (
    MirrorRecord,
    has_mirror_state,
    read_mirror_state,
    write_mirror_state,
)

SETTINGS = MirrorSettings(
    source_bootstrap="127.0.0.1:9001",
    target_bootstrap="127.0.0.1:9002",
    source_alias="east",
    topics="orders.*",
)


class TestMm2Properties:
    def test_one_flow_from_the_alias_to_the_target(self) -> None:
        """Two clusters, the alias's flow enabled, the pattern plus the probe topic."""
        props = mm2_properties(SETTINGS)
        assert props["clusters"] == "east, target"
        assert props["east.bootstrap.servers"] == "127.0.0.1:9001"
        assert props["target.bootstrap.servers"] == "127.0.0.1:9002"
        assert props["east->target.enabled"] == "true"
        assert props["east->target.topics"] == f"orders.*, {PROBE_TOPIC}"
        assert "target->east.enabled" not in props

    def test_every_topic_mirrormaker_creates_has_one_replica(self) -> None:
        """Mirrored topics (default 2) and each internal topic (default 3) fit one broker."""
        props = mm2_properties(SETTINGS)
        for key in (
            "replication.factor",
            "offset.storage.replication.factor",
            "config.storage.replication.factor",
            "status.storage.replication.factor",
            "offset-syncs.topic.replication.factor",
            "heartbeats.topic.replication.factor",
            "checkpoints.topic.replication.factor",
        ):
            assert props[key] == "1", key

    def test_reset_policy_reaches_the_source_consumer(self) -> None:
        """auto.offset.reset goes through the source alias's consumer prefix."""
        assert mm2_properties(SETTINGS)["east.consumer.auto.offset.reset"] == "earliest"
        latest = dataclasses.replace(SETTINGS, offset_reset="latest")
        assert mm2_properties(latest)["east.consumer.auto.offset.reset"] == "latest"

    def test_worker_settings_use_the_target_prefix(self) -> None:
        """The ALIAS->target worker reads its settings from the target's prefix."""
        props = mm2_properties(dataclasses.replace(SETTINGS, offset_flush_interval_ms=600_000))
        assert props["target.offset.flush.interval.ms"] == "600000"
        assert props["target.scheduled.rebalance.max.delay.ms"] == "0"
        assert props["refresh.topics.interval.seconds"] == "1"

    @pytest.mark.parametrize(
        ("policy", "java_class", "remote"),
        [
            ("default", "DefaultReplicationPolicy", "east.orders"),
            ("identity", "IdentityReplicationPolicy", "orders"),
        ],
    )
    def test_replication_policy_names_the_remote_topic(
        self, policy: str, java_class: str, remote: str
    ) -> None:
        """The policy class and the name the test bed expects on the target agree."""
        settings = dataclasses.replace(SETTINGS, replication_policy=policy)
        assert mm2_properties(settings)["replication.policy.class"].endswith(java_class)
        assert settings.remote_topic("orders") == remote

    def test_heartbeats_and_checkpoints_are_off(self) -> None:
        """No reverse herder and no checkpoint task: they only cost start-up time here."""
        props = mm2_properties(SETTINGS)
        assert props["emit.heartbeats.enabled"] == "false"
        assert props["emit.checkpoints.enabled"] == "false"

    def test_extra_entries_win(self) -> None:
        """``extra`` is written last, over the test bed's defaults."""
        settings = dataclasses.replace(SETTINGS, extra=(("emit.checkpoints.enabled", "true"),))
        assert mm2_properties(settings)["emit.checkpoints.enabled"] == "true"

    def test_rendered_file_escapes_backslashes(self) -> None:
        """A regex backslash survives Java's properties parser."""
        settings = dataclasses.replace(SETTINGS, topics=r"orders\.v[0-9]+")
        text = render_mm2_properties(mm2_properties(settings))
        assert r"east->target.topics=orders\\.v[0-9]+, gapwatch-mirror-probe" in text

    def test_internal_topic_names_follow_mirrormaker(self) -> None:
        """MirrorMakerConfig's defaults: mm2-offsets.ALIAS.internal, mm2-configs.ALIAS..."""
        assert SETTINGS.offsets_topic == "mm2-offsets.east.internal"
        assert SETTINGS.configs_topic == "mm2-configs.east.internal"


class TestValidation:
    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"source_alias": "tar.get"}, "source_alias"),
            ({"source_alias": "target"}, "source_alias"),
            ({"topics": "a,b"}, "topics"),
            ({"topics": " "}, "topics"),
            ({"replication_policy": "custom"}, "replication_policy"),
            ({"offset_reset": "none"}, "offset_reset"),
            ({"offset_flush_interval_ms": 0}, "offset_flush_interval_ms"),
            ({"refresh_topics_interval_s": 0}, "refresh_topics_interval_s"),
            ({"target_bootstrap": "127.0.0.1:9001"}, "same cluster"),
            ({"source_bootstrap": ""}, "source_bootstrap"),
            ({"extra": (("clusters", "a"),)}, "extra"),
            ({"extra": (("a=b", "c"),)}, "extra"),
        ],
    )
    def test_bad_settings_name_the_field(self, change: dict[str, object], field: str) -> None:
        """Every bad field is refused before anything starts, with its name."""
        with pytest.raises(ValueError, match=field):
            dataclasses.replace(SETTINGS, **change).validate()  # type: ignore[arg-type]


class TestFiles:
    def test_files_live_in_the_state_dir(self, tmp_path: Path) -> None:
        """Config, log4j, log and stdout all sit under the mirror's own directory."""
        files = MirrorFiles(tmp_path)
        assert files.config_path == tmp_path / "mm2.properties"
        assert files.server_log_path == tmp_path / "logs" / "mm2.log"
        assert files.stdout_path == tmp_path / "stdout.log"

    def test_jvm_command_runs_mirrormaker_on_its_config(self, tmp_path: Path) -> None:
        """Dedicated mode: MirrorMaker's main class with mm2.properties as its argument,
        the jars of the mirror cache on the classpath, the heap asked for."""
        files = MirrorFiles(tmp_path)
        command = jvm_command(
            java="java",
            jars_dir=tmp_path / "libs",
            node=files,
            state_dir=tmp_path,
            heap="256m",
            main_class=MIRROR_MAKER_MAIN,
            args=[str(files.config_path)],
        )
        assert command[-2:] == [MIRROR_MAKER_MAIN, str(files.config_path)]
        assert "-Xmx256m" in command
        assert f"{tmp_path / 'libs'}/*" in command
        assert f"-Dlog4j2.configurationFile={files.log4j_path}" in command


class TestStateFile:
    def test_round_trip(self, tmp_path: Path) -> None:
        """What ``up`` writes is what ``stop``/``start``/``down`` read back."""
        settings = dataclasses.replace(SETTINGS, extra=(("a.b", "c"),), offset_reset="latest")
        record = MirrorRecord("4.3.1", "/usr/bin/java", "/jars", "256m", 4242, settings)
        assert not has_mirror_state(tmp_path)
        write_mirror_state(tmp_path, record)
        assert has_mirror_state(tmp_path)
        assert read_mirror_state(tmp_path) == record

    def test_missing_or_broken_state_is_a_clear_error(self, tmp_path: Path) -> None:
        """No file: 'was up run?'; garbage: 'unreadable'."""
        with pytest.raises(ClusterStateError, match="was 'up' run"):
            read_mirror_state(tmp_path)
        (tmp_path / "mirror.json").write_text("{}")
        with pytest.raises(ClusterStateError, match="unreadable"):
            read_mirror_state(tmp_path)


class TestJars:
    def test_mirror_pom_asks_for_connect_mirror_at_the_version(self) -> None:
        """connect-mirror of the brokers' version, with the same log4j2 binding."""
        pom = _maven.render_pom(DEFAULT_KAFKA_VERSION, _maven.MIRROR_JARS)
        assert (
            f"<artifactId>connect-mirror</artifactId><version>{DEFAULT_KAFKA_VERSION}</version>"
            in pom
        )
        assert "<artifactId>log4j-slf4j-impl</artifactId>" in pom
        assert "kafka_2.13" not in pom

    def test_mirror_jars_have_their_own_cache_dir(self, tmp_path: Path) -> None:
        """Cached apart from the broker's jars, so neither classpath holds the other's."""
        assert _maven.version_dir("4.3.1", tmp_path, _maven.MIRROR_JARS) == (
            tmp_path / "mirror-maker" / "4.3.1"
        )
        assert _maven.version_dir("4.3.1", tmp_path) == tmp_path / "4.3.1"

    def test_marker_present_means_no_maven(self, tmp_path: Path) -> None:
        """As for the broker: with the marker, fetching runs nothing."""
        cached = tmp_path / "mirror-maker" / "4.3.1"
        (cached / "libs").mkdir(parents=True)
        (cached / _maven.MARKER_NAME).write_text("connect-mirror-4.3.1.jar\n")
        result = _maven.fetch_mirror_maker("4.3.1", root=tmp_path, maven_args=["--invalid"])
        assert result.downloaded is False
        assert result.jars_dir == cached / "libs"

    def test_failures_name_mirrormaker(self) -> None:
        """Maven's failure is explained for the jar set it was fetching."""
        message = _maven.explain_failure("9.9.9", "Could not find artifact", _maven.MIRROR_JARS)
        assert "MirrorMaker 2 9.9.9" in message

    def test_a_cached_miss_reads_as_an_unknown_version(self) -> None:
        """Maven words a miss it remembers from an earlier attempt differently."""
        output = (
            "Could not resolve dependencies for project gapwatch.testing:kafka-jars:pom:0: "
            "org.apache.kafka:connect-mirror:jar:4.4.0 was not found in "
            "https://repo.maven.apache.org/maven2 during a previous attempt."
        )
        message = _maven.explain_failure("4.4.0", output, _maven.MIRROR_JARS)
        assert "does the version exist?" in message


class TestCommandLine:
    def test_up_needs_both_clusters_alias_topics_and_state_dir(self) -> None:
        """The issue's flags parse, with defaults for the optional ones."""
        args = build_parser().parse_args(
            [
                "up",
                "--source", "127.0.0.1:1",
                "--target", "127.0.0.1:2",
                "--source-alias", "east",
                "--topics", "orders.*",
                "--state-dir", "/tmp/m",
            ]
        )  # fmt: skip
        assert (args.replication_policy, args.offset_reset) == ("default", "earliest")
        with pytest.raises(SystemExit):
            build_parser().parse_args(["up", "--source", "127.0.0.1:1"])

    def test_start_accepts_a_new_offset_reset(self) -> None:
        """``start --offset-reset latest`` is how a test restarts at the log end."""
        args = build_parser().parse_args(["start", "--state-dir", "/m", "--offset-reset", "latest"])
        assert args.offset_reset == "latest"
        assert build_parser().parse_args(["start", "--state-dir", "/m"]).offset_reset is None
