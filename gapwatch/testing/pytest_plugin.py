"""pytest fixtures running tests against a real Kafka cluster from :mod:`.kafka`.

Enable with ``pytest_plugins = ["gapwatch.testing.pytest_plugin"]`` in a ``conftest.py``.

- ``kafka``: session-scoped 1-node cluster, started on first use.
- ``kafka3``: session-scoped 3-node cluster, started only if some test requests it.
- ``secured_kafka``: ``secured_kafka(SecurityPlan(mode="sasl_ssl", ...), nodes=1)`` returns
  a session-scoped secured cluster. Only one runs at a time: asking for another plan stops
  the previous one, so tests grouped by plan start each cluster once and a 2-core machine
  never holds more than one secured JVM set.
- ``topic_name``: a fresh, random topic name per test (not created).
- ``make_topic``: ``await make_topic(cluster=None, partitions=3, replication_factor=1,
  configs=None)`` creates a fresh random topic (on ``kafka`` by default) and returns its name.
- ``mirror_target``: session-scoped 1-node cluster that MirrorMaker copies into, started
  only if some test requests it. The source of every mirror is ``kafka``.
- ``make_mirror``: ``make_mirror(topics=REGEX, source_alias=None, replication_policy=
  "default", offset_reset="earliest", offset_flush_interval_ms=1000, extra=())`` starts a
  real MirrorMaker 2 from ``kafka`` to ``mirror_target`` and returns its
  :class:`~gapwatch.testing.mirror.Mirror` once it copies; killed when the test ends. Each
  gets a fresh random source alias unless one is given, so mirrors never share state.

A cluster that cannot start makes the requesting test *error*, never skip. Locally,
``GAPWATCH_SKIP_KAFKA=1`` skips tests using these fixtures or marked ``kafka``/``chaos``
instead; with ``CI=true`` that opt-out is refused (the tests error).
Before each test that uses a cluster fixture, nodes an earlier test stopped, killed or paused
are brought back (:meth:`KafkaCluster.heal`), so one fault test cannot break the next.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import pytest

from gapwatch.testing.kafka import KafkaCluster, SecurityPlan
from gapwatch.testing.mirror import (
    DEFAULT_OFFSET_FLUSH_INTERVAL_MS,
    Mirror,
    MirrorSettings,
)

SKIP_ENV = "GAPWATCH_SKIP_KAFKA"
_TRUTHY = {"1", "true", "yes", "on"}
_CLUSTERS = pytest.StashKey[dict[str, KafkaCluster]]()


class MakeTopic(Protocol):
    """Type of the ``make_topic`` fixture's factory."""

    async def __call__(
        self,
        cluster: KafkaCluster | None = None,
        partitions: int = 3,
        replication_factor: int = 1,
        configs: Mapping[str, str] | None = None,
    ) -> str: ...


class MakeMirror(Protocol):
    """Type of the ``make_mirror`` fixture's factory."""

    def __call__(
        self,
        topics: str,
        *,
        source_alias: str | None = None,
        replication_policy: str = "default",
        offset_reset: str = "earliest",
        offset_flush_interval_ms: int = DEFAULT_OFFSET_FLUSH_INTERVAL_MS,
        extra: Sequence[tuple[str, str]] = (),
    ) -> Mirror: ...


class SecuredKafka(Protocol):
    """Type of the ``secured_kafka`` fixture's factory."""

    def __call__(self, security: SecurityPlan, nodes: int = 1) -> KafkaCluster: ...


def _is_set(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUTHY


def _skip_if_opted_out() -> None:
    if not _is_set(SKIP_ENV):
        return
    if _is_set("CI"):
        pytest.fail(f"{SKIP_ENV} is set but CI=true: integration tests may not skip in CI")
    pytest.skip(f"{SKIP_ENV} is set: skipping tests that need a Kafka cluster")


def _session_cluster(request: pytest.FixtureRequest, name: str, nodes: int) -> KafkaCluster:
    _skip_if_opted_out()
    cluster = KafkaCluster(nodes=nodes)
    # Register the teardown before starting: start() cleans up after itself on failure,
    # and this also covers a KeyboardInterrupt after it returns.
    request.addfinalizer(cluster.stop)
    cluster.start()
    request.config.stash.setdefault(_CLUSTERS, {})[name] = cluster
    return cluster


@pytest.fixture(scope="session")
def kafka(request: pytest.FixtureRequest) -> KafkaCluster:
    """A 1-node Kafka cluster shared by the whole session."""
    return _session_cluster(request, "kafka", 1)


@pytest.fixture(scope="session")
def kafka3(request: pytest.FixtureRequest) -> KafkaCluster:
    """A 3-node Kafka cluster (internal topics replicated 3x) shared by the whole session."""
    return _session_cluster(request, "kafka3", 3)


@pytest.fixture(scope="session")
def secured_kafka(request: pytest.FixtureRequest) -> Iterator[SecuredKafka]:
    """Factory of secured clusters, one at a time, each kept while tests ask for its plan."""
    current: dict[tuple[SecurityPlan, int], KafkaCluster] = {}

    def stop_current() -> None:
        for cluster in current.values():
            cluster.stop()
        current.clear()

    def get(security: SecurityPlan, nodes: int = 1) -> KafkaCluster:
        key = (security, nodes)
        if key in current:
            return current[key]
        stop_current()
        _skip_if_opted_out()
        cluster = KafkaCluster(nodes=nodes, security=security)
        current[key] = cluster  # registered first: stop_current also covers a failed start
        cluster.start()
        # Healed before later tests like the other session clusters.
        request.config.stash.setdefault(_CLUSTERS, {})["secured_kafka"] = cluster
        return cluster

    try:
        yield get
    finally:
        stop_current()


@pytest.fixture(scope="session")
def mirror_target(request: pytest.FixtureRequest) -> KafkaCluster:
    """A second 1-node cluster, the target of the mirrors ``make_mirror`` starts."""
    return _session_cluster(request, "mirror_target", 1)


@pytest.fixture
def make_mirror(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeMirror]:
    """Factory of real MirrorMakers from ``kafka`` to ``mirror_target``, each returned once
    it copies and killed at the end of the test (its log stays under ``tmp_path``)."""
    started: list[Mirror] = []

    def start(
        topics: str,
        *,
        source_alias: str | None = None,
        replication_policy: str = "default",
        offset_reset: str = "earliest",
        offset_flush_interval_ms: int = DEFAULT_OFFSET_FLUSH_INTERVAL_MS,
        extra: Sequence[tuple[str, str]] = (),
    ) -> Mirror:
        # Resolved lazily, so that only tests using mirrors start the target cluster.
        source: KafkaCluster = request.getfixturevalue("kafka")
        target: KafkaCluster = request.getfixturevalue("mirror_target")
        settings = MirrorSettings(
            source_bootstrap=source.bootstrap_servers,
            target_bootstrap=target.bootstrap_servers,
            # A fresh alias: its own Connect group and internal topics on the target, so a
            # mirror never resumes from offsets or configs another test left behind.
            source_alias=source_alias or f"src-{secrets.token_hex(3)}",
            topics=topics,
            replication_policy=replication_policy,
            offset_reset=offset_reset,
            offset_flush_interval_ms=offset_flush_interval_ms,
            extra=tuple(extra),
        )
        mirror = Mirror(settings, tmp_path / f"mirror-{len(started) + 1}")
        started.append(mirror)  # registered first: teardown also covers a failed start
        return mirror.start()

    try:
        yield start
    finally:
        for mirror in started:
            mirror.close()


def random_topic_name(test_name: str) -> str:
    """``gw-<test name>-<random>``: legal in Kafka and recognisable in broker logs."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", test_name).strip("-.")[:80] or "test"
    return f"gw-{stem}-{secrets.token_hex(4)}"


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    """A fresh random topic name for this test; the topic is not created."""
    return random_topic_name(request.node.name)


@pytest.fixture
def make_topic(request: pytest.FixtureRequest) -> MakeTopic:
    """Async factory creating fresh random topics, on ``kafka`` unless a cluster is given."""

    async def create(
        cluster: KafkaCluster | None = None,
        partitions: int = 3,
        replication_factor: int = 1,
        configs: Mapping[str, str] | None = None,
    ) -> str:
        # Resolved lazily so that a test using only kafka3 never starts the 1-node cluster.
        target: KafkaCluster = cluster if cluster is not None else request.getfixturevalue("kafka")
        name = random_topic_name(request.node.name)
        await target.create_topic(
            name, partitions=partitions, replication_factor=replication_factor, configs=configs
        )
        return name

    return create


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers this plugin acts on, for projects that do not declare them."""
    config.addinivalue_line("markers", "kafka: needs a real Kafka cluster (gapwatch.testing)")
    config.addinivalue_line("markers", "chaos: injects faults into a real 3-node Kafka cluster")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Apply the opt-out to ``kafka``/``chaos``-marked tests; heal the session clusters this
    test uses, undoing faults earlier tests left behind."""
    if item.get_closest_marker("kafka") or item.get_closest_marker("chaos"):
        _skip_if_opted_out()
    clusters = item.config.stash.get(_CLUSTERS, {})
    for name in getattr(item, "fixturenames", ()):
        if name in clusters:
            clusters[name].heal()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Drop references to stopped clusters (their fixtures' finalizers stopped them)."""
    session.config.stash[_CLUSTERS] = {}


__all__ = [
    "MakeMirror",
    "MakeTopic",
    "SecuredKafka",
    "kafka",
    "kafka3",
    "make_mirror",
    "make_topic",
    "mirror_target",
    "random_topic_name",
    "secured_kafka",
    "topic_name",
]
