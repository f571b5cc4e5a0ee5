"""The Kafka test bed's pure parts: config generation, ports, versions, Maven, CLI parsing."""

from __future__ import annotations

import argparse
import base64
from pathlib import Path

import pytest

from gapwatch.testing import _cli, _config, _maven, kafka
from gapwatch.testing._config import (
    DEFAULT_KAFKA_VERSION,
    NodeSpec,
    allocate_ports,
    check_overrides,
    jvm_command,
    new_cluster_id,
    parse_properties,
    plan_nodes,
    render_properties,
    server_properties,
)
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import random_topic_name


def _three_nodes(tmp_path: Path) -> list[NodeSpec]:
    return plan_nodes(tmp_path, 3, ports=[9001, 9101, 9002, 9102, 9003, 9103])


class TestServerProperties:
    def test_node_is_combined_broker_and_controller_with_static_voters(
        self, tmp_path: Path
    ) -> None:
        """Every node lists all voters and its own loopback listeners and log dir."""
        nodes = _three_nodes(tmp_path)
        props = server_properties(nodes[1], nodes)
        assert props["process.roles"] == "broker,controller"
        assert props["node.id"] == "2"
        assert props["controller.quorum.voters"] == (
            "1@127.0.0.1:9101,2@127.0.0.1:9102,3@127.0.0.1:9103"
        )
        assert props["listeners"] == "PLAINTEXT://127.0.0.1:9002,CONTROLLER://127.0.0.1:9102"
        assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9002"
        assert props["log.dirs"] == str(tmp_path / "node-2" / "data")

    def test_timing_settings_are_explicit(self, tmp_path: Path) -> None:
        """Fault-relevant timings are set, not left to Kafka's defaults."""
        nodes = _three_nodes(tmp_path)
        props = server_properties(nodes[0], nodes)
        assert props["broker.session.timeout.ms"] == "3000"
        assert props["broker.heartbeat.interval.ms"] == "500"
        assert props["replica.lag.time.max.ms"] == "5000"
        assert props["group.initial.rebalance.delay.ms"] == "0"
        assert props["offsets.topic.num.partitions"] == "4"

    def test_three_nodes_replicate_internal_topics_three_times(self, tmp_path: Path) -> None:
        """Offsets, transactions and share state survive losing one of three nodes."""
        nodes = _three_nodes(tmp_path)
        props = server_properties(nodes[0], nodes)
        assert props["offsets.topic.replication.factor"] == "3"
        assert props["transaction.state.log.replication.factor"] == "3"
        assert props["transaction.state.log.min.isr"] == "2"
        assert props["share.coordinator.state.topic.replication.factor"] == "3"
        assert props["share.coordinator.state.topic.min.isr"] == "2"

    def test_one_node_uses_replication_factor_one(self, tmp_path: Path) -> None:
        """A single node cannot host more than one replica of anything."""
        nodes = plan_nodes(tmp_path, 1, ports=[9001, 9101])
        props = server_properties(nodes[0], nodes)
        assert props["offsets.topic.replication.factor"] == "1"
        assert props["transaction.state.log.min.isr"] == "1"
        assert props["share.coordinator.state.topic.min.isr"] == "1"

    def test_node_overrides_beat_broker_overrides_beat_defaults(self, tmp_path: Path) -> None:
        """Precedence: defaults < broker_overrides < node_overrides, bools lower-cased."""
        nodes = _three_nodes(tmp_path)
        broker = {"broker.session.timeout.ms": 9000, "min.insync.replicas": 2}
        node = {"min.insync.replicas": 1, "unclean.leader.election.enable": True}
        props = server_properties(nodes[0], nodes, broker_overrides=broker, node_overrides=node)
        assert props["broker.session.timeout.ms"] == "9000"
        assert props["min.insync.replicas"] == "1"
        assert props["unclean.leader.election.enable"] == "true"
        assert "unclean.leader.election.enable" not in server_properties(
            nodes[1], nodes, broker_overrides=broker
        )

    @pytest.mark.parametrize("key", ["node.id", "listeners", "log.dirs", "process.roles"])
    def test_layout_keys_cannot_be_overridden(self, key: str) -> None:
        """Overriding a key the test bed manages is rejected, naming the key."""
        with pytest.raises(ValueError, match=key):
            check_overrides({key: "x"}, where="broker_overrides")

    def test_values_with_newlines_are_rejected(self) -> None:
        """A newline would smuggle a second setting into server.properties."""
        with pytest.raises(ValueError, match="invalid config entry"):
            check_overrides({"a": "1\nnode.id=9"}, where="broker_overrides")

    def test_properties_text_round_trips(self) -> None:
        """What render_properties writes, parse_properties reads back, backslashes included."""
        props = {"a.b": "1", "path": "C:\\x\\y", "empty": ""}
        text = render_properties(props)
        assert text.startswith("#")
        assert parse_properties(text) == props


class TestLayout:
    def test_ports_are_distinct_and_free(self) -> None:
        """Six ports for three nodes, all different and bindable on loopback."""
        ports = allocate_ports(6)
        assert len(set(ports)) == 6
        assert all(1024 <= port <= 65535 for port in ports)

    def test_nodes_are_numbered_from_one_with_own_directories(self, tmp_path: Path) -> None:
        """node.id 1..N, each in node-<id>/ with its own config, data and logs."""
        nodes = plan_nodes(tmp_path, 3)
        assert [n.node_id for n in nodes] == [1, 2, 3]
        assert len({n.node_dir for n in nodes}) == 3
        assert nodes[2].config_path == tmp_path / "node-3" / "server.properties"
        assert nodes[2].server_log_path == tmp_path / "node-3" / "logs" / "server.log"
        assert nodes[0].bootstrap == f"127.0.0.1:{nodes[0].port}"

    def test_zero_nodes_is_rejected(self, tmp_path: Path) -> None:
        """A cluster needs at least one node."""
        with pytest.raises(ValueError, match="at least 1"):
            plan_nodes(tmp_path, 0)

    def test_cluster_id_is_kafka_style_base64_uuid(self) -> None:
        """22 URL-safe base64 characters decoding to 16 bytes, never starting with '-'."""
        for _ in range(200):
            cluster_id = new_cluster_id()
            assert len(cluster_id) == 22
            assert not cluster_id.startswith("-")
            assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


class TestJvmCommand:
    def test_broker_command_is_small_tagged_and_logs_to_a_file(self, tmp_path: Path) -> None:
        """Heap cap, state-dir tag for targeted cleanup, log4j2 file config, main class."""
        node = plan_nodes(tmp_path, 1, ports=[9001, 9101])[0]
        command = jvm_command(
            java="java",
            jars_dir=tmp_path / "libs",
            node=node,
            state_dir=tmp_path,
            heap="384m",
            main_class="kafka.Kafka",
            args=[str(node.config_path)],
            extra_jvm_args=["-XX:TieredStopAtLevel=4"],
        )
        assert "-Xmx384m" in command
        assert f"-Dgapwatch.state.dir={tmp_path}" in command
        assert f"-Dlog4j2.configurationFile={node.log4j_path}" in command
        assert f"-Dkafka.logs.dir={node.logs_dir}" in command
        assert command[-2:] == ["kafka.Kafka", str(node.config_path)]
        # Extra options come after the defaults, so the JVM lets them win.
        assert command.index("-XX:TieredStopAtLevel=4") > command.index("-XX:TieredStopAtLevel=1")

    def test_log4j_config_writes_only_to_a_file(self) -> None:
        """Broker logs never reach the terminal: the only appender is a File."""
        assert "appender.file.type = File" in _config.LOG4J2_PROPERTIES
        assert "Console" not in _config.LOG4J2_PROPERTIES


class TestVersionsAndCache:
    def test_version_defaults_to_the_pinned_one(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without argument or env var, the one pinned constant is used."""
        monkeypatch.delenv(_config.VERSION_ENV, raising=False)
        assert _config.resolve_version() == DEFAULT_KAFKA_VERSION == "4.3.1"

    def test_env_var_overrides_the_version(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """GAPWATCH_KAFKA_VERSION wins over the default, an argument over both."""
        monkeypatch.setenv(_config.VERSION_ENV, "4.1.0")
        assert _config.resolve_version() == "4.1.0"
        assert _config.resolve_version("4.2.0") == "4.2.0"

    def test_malformed_version_is_rejected(self) -> None:
        """The version ends up in a POM, so only version-shaped strings are accepted."""
        with pytest.raises(ValueError, match="does not look like"):
            _config.resolve_version("4.3.1</version>")

    def test_cache_dir_env_override(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """GAPWATCH_KAFKA_CACHE replaces ~/.cache/gapwatch/kafka."""
        monkeypatch.setenv(_config.CACHE_ENV, str(tmp_path))
        assert _maven.version_dir("4.3.1") == tmp_path / "4.3.1"
        monkeypatch.delenv(_config.CACHE_ENV)
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
        assert _config.cache_root() == Path.home() / ".cache" / "gapwatch" / "kafka"

    def test_marker_present_means_no_maven(self, tmp_path: Path) -> None:
        """With the completed-marker in place, fetch returns without running anything."""
        (tmp_path / "4.3.1" / "libs").mkdir(parents=True)
        (tmp_path / "4.3.1" / _maven.MARKER_NAME).write_text("kafka_2.13-4.3.1.jar\n")
        result = _maven.fetch_kafka("4.3.1", root=tmp_path, maven_args=["--definitely-invalid"])
        assert result.downloaded is False
        assert result.jars_dir == tmp_path / "4.3.1" / "libs"


class TestMaven:
    def test_pom_asks_for_kafka_and_the_slf4j1_log4j2_binding(self) -> None:
        """kafka_2.13 at the version, plus log4j-slf4j-impl (SLF4J 1.x) and log4j-core."""
        pom = _maven.render_pom("4.3.1")
        assert "<artifactId>kafka_2.13</artifactId><version>4.3.1</version>" in pom
        assert "<artifactId>log4j-slf4j-impl</artifactId>" in pom
        assert "<artifactId>log4j-core</artifactId>" in pom
        assert "log4j-slf4j2-impl" not in pom

    def test_maven_command_copies_runtime_dependencies(self, tmp_path: Path) -> None:
        """Batch mode, pinned plugin, runtime scope, into the given directory."""
        command = _maven.maven_command("mvn", tmp_path, ["-o"])
        assert command[:2] == ["mvn", "-B"]
        assert "-o" in command
        assert f"{_maven.DEPENDENCY_PLUGIN}:copy-dependencies" in command
        assert f"-DoutputDirectory={tmp_path}" in command

    @pytest.mark.parametrize(
        ("output", "expected"),
        [
            ("Could not transfer artifact x from/to central: Connection refused", "Maven Central"),
            ("No plugin found for prefix 'dependency' in the current project", "Maven Central"),
            ("Could not find artifact org.apache.kafka:kafka_2.13:jar:9.9.9", "does the version"),
            ("something else entirely", "Maven failed"),
        ],
    )
    def test_failures_are_explained(self, output: str, expected: str) -> None:
        """Unreachable repository, unknown version and other failures read differently."""
        assert expected in _maven.explain_failure("9.9.9", output)


class TestClusterArguments:
    def test_overrides_for_unknown_nodes_are_rejected(self) -> None:
        """node_overrides may only name node ids 1..N; checked before anything starts."""
        with pytest.raises(ValueError, match=r"unknown node ids \[4\]"):
            KafkaCluster(nodes=3, node_overrides={4: {"min.insync.replicas": 2}})

    def test_topology_is_known_before_start(self) -> None:
        """node_ids is 1..N even before start(); addresses need a started cluster."""
        assert KafkaCluster(nodes=3).node_ids == [1, 2, 3]


class TestCommandLineParsing:
    def test_up_parses_nodes_state_dir_and_settings(self) -> None:
        """--set applies to all nodes, --node-set to one."""
        args = _cli.build_parser().parse_args(
            [
                "up",
                "--nodes",
                "3",
                "--state-dir",
                "/tmp/k",
                "--set",
                "min.insync.replicas=2",
                "--node-set",
                "2:unclean.leader.election.enable=true",
            ]
        )
        assert args.nodes == 3
        assert args.state_dir == "/tmp/k"
        assert args.settings == [("min.insync.replicas", "2")]
        assert args.node_settings == [(2, "unclean.leader.election.enable", "true")]

    @pytest.mark.parametrize("fault", ["stop", "kill", "pause", "resume", "restart"])
    def test_faults_take_a_node_id(self, fault: str) -> None:
        """Every fault command addresses one node by its node.id."""
        args = _cli.build_parser().parse_args([fault, "--node", "2", "--state-dir", "/tmp/k"])
        assert (args.command, args.node) == (fault, 2)

    def test_fault_without_node_is_a_usage_error(self) -> None:
        """argparse exits with status 2 when --node is missing."""
        with pytest.raises(SystemExit) as exc_info:
            _cli.build_parser().parse_args(["kill", "--state-dir", "/tmp/k"])
        assert exc_info.value.code == 2

    @pytest.mark.parametrize("bad", ["novalue", "=x"])
    def test_bad_setting_is_rejected(self, bad: str) -> None:
        """--set needs KEY=VALUE."""
        with pytest.raises(argparse.ArgumentTypeError):
            _cli.parse_setting(bad)

    def test_down_without_state_is_a_clear_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Acting on a directory that never held a cluster exits 1 with a message."""
        assert kafka.main(["down", "--state-dir", str(tmp_path)]) == 1
        assert "no cluster state" in capsys.readouterr().err


class TestTopicNames:
    def test_names_are_fresh_and_legal(self) -> None:
        """Random suffix per call; only characters Kafka allows in topic names."""
        first = random_topic_name("test_x[param/1 2]")
        second = random_topic_name("test_x[param/1 2]")
        assert first != second
        assert first.startswith("gw-test_x-param-1-2-")
        assert all(c.isalnum() or c in "._-" for c in first)
        assert len(first) < 249


class TestSkipOptOut:
    """The local opt-out skips Kafka tests; under CI=true it fails them instead."""

    TEST_FILE = """
import pytest

def test_needs_kafka(kafka):
    assert kafka.bootstrap_servers

@pytest.mark.kafka
def test_marked_kafka():
    assert False, "must not run when opted out"
"""

    def test_opt_out_skips_locally(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """GAPWATCH_SKIP_KAFKA=1 without CI: fixture users and kafka-marked tests skip."""
        monkeypatch.setenv("GAPWATCH_SKIP_KAFKA", "1")
        monkeypatch.delenv("CI", raising=False)
        # Only this plugin: autoloading hypothesis, asyncio etc. would triple the run time.
        monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
        pytester.makepyfile(self.TEST_FILE)
        result = pytester.runpytest("-p", "gapwatch.testing.pytest_plugin", "-W", "error")
        result.assert_outcomes(skipped=2)

    def test_opt_out_is_refused_in_ci(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """GAPWATCH_SKIP_KAFKA=1 with CI=true: the test errors instead of skipping."""
        monkeypatch.setenv("GAPWATCH_SKIP_KAFKA", "1")
        monkeypatch.setenv("CI", "true")
        # Only this plugin: autoloading hypothesis, asyncio etc. would triple the run time.
        monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
        pytester.makepyfile(self.TEST_FILE)
        result = pytester.runpytest("-p", "gapwatch.testing.pytest_plugin", "-W", "error")
        result.assert_outcomes(errors=2)
        result.stdout.fnmatch_lines(["*may not skip in CI*"])
