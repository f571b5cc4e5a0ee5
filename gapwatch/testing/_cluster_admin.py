"""The async admin helpers of :class:`~gapwatch.testing.kafka.KafkaCluster`, as a mixin.

Each helper asks whichever nodes can answer right now (the cluster's
``_reachable_bootstrap``) and hands the work to :mod:`._admin`; keeping them here leaves
``kafka.py`` with the cluster's lifecycle and fault controls.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from gapwatch.testing import _admin
from gapwatch.testing._admin import PartitionState


class ClusterAdmin:
    """Topic creation and partition/broker queries for a running cluster."""

    def _reachable_bootstrap(self) -> str:
        raise NotImplementedError  # the cluster knows which nodes can answer

    def _admin_options(self) -> dict[str, Any]:
        raise NotImplementedError  # the cluster knows how it is secured

    async def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 1,
        configs: Mapping[str, str] | None = None,
        *,
        timeout_s: float = 30.0,
        placement: Sequence[Sequence[int]] | None = None,
    ) -> None:
        """Create a topic; raise :class:`TopicError` on any per-topic error code (including
        "already exists"); return once every partition has a leader.

        ``placement`` pins the replicas of each partition by node.id, preferred leader
        first (e.g. ``[[2, 3]]``); it then replaces ``partitions`` and
        ``replication_factor``. Fault tests use it to put a leader where they need it."""
        await _admin.create_topic(
            self._reachable_bootstrap(),
            name,
            partitions=partitions,
            replication_factor=replication_factor,
            configs=configs,
            timeout_s=timeout_s,
            placement=placement,
            options=self._admin_options(),
        )

    async def partitions(self, topic: str, *, timeout_s: float = 30.0) -> set[int]:
        """The partition ids of ``topic``, waiting until metadata lists them."""
        return await _admin.topic_partitions(
            self._reachable_bootstrap(), topic, timeout_s=timeout_s, options=self._admin_options()
        )

    async def describe_partition(self, topic: str, partition: int = 0) -> PartitionState:
        """Current leader (``None`` if none), replicas and ISR of one partition."""
        return await _admin.describe_partition(
            self._reachable_bootstrap(), topic, partition, options=self._admin_options()
        )

    async def wait_for_leader(
        self,
        topic: str,
        partition: int = 0,
        *,
        exclude: Collection[int] = (),
        timeout_s: float = 30.0,
    ) -> PartitionState:
        """Wait until the partition has a leader not in ``exclude`` (e.g. the killed one)."""
        return await _admin.wait_for_partition(
            self._reachable_bootstrap(),
            topic,
            partition,
            timeout_s=timeout_s,
            exclude_leaders=exclude,
            options=self._admin_options(),
        )

    async def wait_for_isr(
        self, topic: str, partition: int, node_ids: Collection[int], *, timeout_s: float = 60.0
    ) -> PartitionState:
        """Wait until every node in ``node_ids`` is in the partition's ISR (e.g. after restart)."""
        return await _admin.wait_for_partition(
            self._reachable_bootstrap(),
            topic,
            partition,
            timeout_s=timeout_s,
            isr_includes=node_ids,
            options=self._admin_options(),
        )

    async def broker_ids(self) -> set[int]:
        """Broker ids the cluster's metadata lists right now (fenced brokers are absent)."""
        return await _admin.broker_ids(self._reachable_bootstrap(), options=self._admin_options())
