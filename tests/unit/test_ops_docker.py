"""The Dockerfile (hadolint and its structure), .dockerignore and docker-compose.yml."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from collections.abc import Iterator

import pytest
from ops_files_support import COMPOSE, DOCKERFILE, DOCKERIGNORE, compose_services, require_tool, run

from gapwatch.cli import build_parser
from gapwatch.commands.loadgen import config_from_args
from gapwatch.monitor.config import HttpSettings
from gapwatch.monitor.config_sources import FIELDS, load_config

# The brokers as the compose services reach them (the INTERNAL listener).
KAFKA_INTERNAL = ("kafka-1:19092", "kafka-2:19092", "kafka-3:19092")


def image_environment() -> dict[str, str]:
    """The variables the Dockerfile's ENV instructions set in the image."""
    environment = {}
    for keyword, args in dockerfile_instructions():
        if keyword == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                environment[key] = value
    return environment


def dockerfile_instructions() -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            yield keyword.upper(), args.strip()


class TestDockerfile:
    """Dockerfile and .dockerignore."""

    def test_hadolint_passes(self) -> None:
        """hadolint finds nothing to complain about."""
        result = run(require_tool("hadolint"), str(DOCKERFILE))
        assert result.returncode == 0, result.stdout + result.stderr

    def test_is_multi_stage_on_python_3_11_slim(self) -> None:
        """A build stage and a runtime stage, both from python:3.11-slim."""
        instructions = list(dockerfile_instructions())
        froms = [args for keyword, args in instructions if keyword == "FROM"]
        assert len(froms) >= 2
        assert ("ARG", "PYTHON_IMAGE=python:3.11-slim") in instructions
        assert all(args.startswith("${PYTHON_IMAGE}") for args in froms)
        assert any(keyword == "COPY" and "--from=build" in args for keyword, args in instructions)

    def test_runs_as_a_non_root_user(self) -> None:
        """The final stage switches to an unprivileged user."""
        instructions = list(dockerfile_instructions())
        last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
        users = [args for keyword, args in instructions[last_from:] if keyword == "USER"]
        assert users, "no USER in the final stage"
        user = users[-1].split(":")[0]
        assert user not in ("root", "0")

    def test_healthcheck_probes_healthz_with_python_on_the_exposed_port(self) -> None:
        """HEALTHCHECK uses the standard library (no curl) against /healthz."""
        instructions = dict(dockerfile_instructions())
        healthcheck = instructions["HEALTHCHECK"]
        assert '"python", "-c"' in healthcheck
        assert "/healthz" in healthcheck
        assert "curl" not in healthcheck
        assert f"GAPWATCH_HTTP_PORT={instructions['EXPOSE']}" in instructions["ENV"]
        assert instructions["EXPOSE"] == str(HttpSettings().port)

    def test_entrypoint_is_gapwatch(self) -> None:
        """`docker run IMAGE <command>` runs `gapwatch <command>`; the default is the monitor."""
        instructions = dict(dockerfile_instructions())
        assert json.loads(instructions["ENTRYPOINT"]) == ["gapwatch"]
        assert json.loads(instructions["CMD"]) == ["monitor"]

    def test_build_context_holds_what_the_dockerfile_copies(self) -> None:
        """.dockerignore excludes everything except the sources COPY needs."""
        allowed = {
            line[1:].rstrip("/")
            for line in DOCKERIGNORE.read_text().splitlines()
            if line.startswith("!")
        }
        assert DOCKERIGNORE.read_text().splitlines().count("*") == 1
        for keyword, args in dockerfile_instructions():
            if keyword == "COPY" and not args.startswith("--from"):
                *sources, _ = args.split()
                assert set(sources) <= allowed, args


class TestDockerCompose:
    """docker-compose.yml: the whole stack, parsed (and validated by Docker where possible)."""

    def test_docker_compose_validates_the_file(self) -> None:
        """`docker compose config` accepts the file where the compose plugin exists."""
        docker = shutil.which("docker")
        if docker is None or run(docker, "compose", "version").returncode != 0:
            pytest.skip("the docker compose plugin is not installed; the file is parsed below")
        result = run(docker, "compose", "--file", str(COMPOSE), "config", "--quiet")
        assert result.returncode == 0, result.stdout + result.stderr

    def test_has_every_service_of_the_stack(self) -> None:
        """Three brokers, topic set-up, monitor, loadgen, Prometheus, Alertmanager, Grafana."""
        assert set(compose_services()) == {
            "kafka-1",
            "kafka-2",
            "kafka-3",
            "kafka-init",
            "monitor",
            "loadgen",
            "prometheus",
            "alertmanager",
            "grafana",
        }

    def test_every_image_is_pinned(self) -> None:
        """Images carry an explicit version tag (no `latest`); Kafka is apache/kafka:4.3.1."""
        for name, service in compose_services().items():
            image = service["image"]
            repository, _, tag = image.rpartition(":")
            assert repository, name
            assert tag not in ("", "latest"), name
            if name.startswith("kafka"):
                assert image == "apache/kafka:4.3.1", name

    def test_kafka_is_three_kraft_nodes_with_rf_3_and_min_isr_2(self) -> None:
        """Three combined broker+controller nodes voting together, durable defaults."""
        services = compose_services()
        brokers = [services[f"kafka-{n}"] for n in (1, 2, 3)]
        envs = [broker["environment"] for broker in brokers]
        assert sorted(env["KAFKA_NODE_ID"] for env in envs) == [1, 2, 3]
        voters = {env["KAFKA_CONTROLLER_QUORUM_VOTERS"] for env in envs}
        assert voters == {"1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}
        assert len({env["CLUSTER_ID"] for env in envs}) == 1
        for n, env in enumerate(envs, start=1):
            assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
            assert f"INTERNAL://kafka-{n}:19092" in env["KAFKA_ADVERTISED_LISTENERS"]
            assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3
            assert env["KAFKA_MIN_INSYNC_REPLICAS"] == 2
            assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 3
        command = services["kafka-init"]["command"]
        assert "--replication-factor=3" in command
        assert "--config=min.insync.replicas=2" in command

    def test_dependencies_name_existing_services(self) -> None:
        """depends_on only names services of the file, and the stack starts in order."""
        services = compose_services()
        for name, service in services.items():
            depends_on = service.get("depends_on", [])
            assert set(depends_on) <= set(services), name
        assert services["monitor"]["depends_on"]["kafka-init"] == {
            "condition": "service_completed_successfully"
        }
        assert set(services["kafka-init"]["depends_on"]) == {"kafka-1", "kafka-2", "kafka-3"}

    def test_published_ports_are_loopback_and_distinct(self) -> None:
        """Nothing is published beyond localhost, and no two services share a host port."""
        host_ports = []
        for name, service in compose_services().items():
            for mapping in service.get("ports", []):
                host, host_port, _ = str(mapping).split(":")
                assert host == "127.0.0.1", name
                host_ports.append(host_port)
        assert len(host_ports) == len(set(host_ports))
        assert {"8571", "9090", "9093", "3000"} <= set(host_ports)

    def test_monitor_command_and_environment_load_with_the_real_cli(self) -> None:
        """The monitor's command parses with gapwatch's own parser, and the image's and the
        service's environment load through the monitor's own config sources into a valid
        config; every GAPWATCH_* variable is one the monitor reads (unknown ones would be
        silently ignored, so a typo would go unnoticed)."""
        monitor = compose_services()["monitor"]
        args = build_parser().parse_args(monitor["command"])
        assert args.handler is not None
        environment = {**image_environment(), **monitor["environment"]}
        gapwatch_vars = {key for key in environment if key.startswith("GAPWATCH_")}
        assert gapwatch_vars <= {spec.env for spec in FIELDS}
        config = load_config(args, {key: str(value) for key, value in environment.items()})
        assert config.kafka.bootstrap_servers == KAFKA_INTERNAL
        assert config.watch.topics == ("gapwatch-demo",)
        assert config.watch.start_from == "earliest"
        assert (config.http.host, config.http.port) == ("0.0.0.0", 8571)
        assert config.reports.enabled
        assert config.alerting.alertmanager_urls == ("http://alertmanager:9093",)
        # Links in pushed alerts must open from the host, where the port is published.
        assert config.alerting.external_url == "http://localhost:8571"

    def test_gapwatch_services_use_the_local_build(self) -> None:
        """Monitor and load generator run the image built from this repository's Dockerfile."""
        services = compose_services()
        for name in ("monitor", "loadgen"):
            assert services[name]["build"] == "."
            assert services[name]["image"] == "gapwatch:local"
            assert services[name]["command"][0] == ("monitor" if name == "monitor" else "loadgen")
        assert services["loadgen"]["healthcheck"] == {"disable": True}

    def test_loadgen_command_parses_and_injects_a_small_loss(self) -> None:
        """The load generator's flags are the real `gapwatch loadgen`'s; it drops a few records."""
        services = compose_services()
        args = build_parser().parse_args(services["loadgen"]["command"])
        assert callable(args.handler)
        config = config_from_args(args)  # validates, as `gapwatch loadgen` does
        assert config.topics == ("gapwatch-demo",)
        assert 0 < config.faults.drop <= 0.01
        assert config.acks == "all"
        assert config.idempotent
        monitor_env = services["monitor"]["environment"]
        assert config.report_topic == monitor_env["GAPWATCH_REPORT_TOPIC"]
        assert tuple(config.bootstrap_servers.split(",")) == KAFKA_INTERNAL

    def test_prometheus_and_alertmanager_use_the_shipped_configs(self) -> None:
        """The compose services mount deploy/ read-only and load the files tested above."""
        services = compose_services()
        assert "./deploy/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
        assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
        assert "./deploy/alertmanager:/etc/alertmanager:ro" in services["alertmanager"]["volumes"]
        assert (
            "--config.file=/etc/alertmanager/alertmanager.yml"
            in services["alertmanager"]["command"]
        )
