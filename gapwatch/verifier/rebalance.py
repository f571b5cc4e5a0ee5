"""The verifier's rebalance listener: restore on assignment, checkpoint on revocation.

aiokafka awaits a listener's coroutines during a rebalance, before the application is
handed records of a newly assigned partition and after it stopped getting records of a
revoked one: the one place where per-partition state can be saved and restored in step
with the group. (aiokafka does not call the listener on ``stop()``; the verifier's own
``stop()`` checkpoints instead.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Protocol

from aiokafka import ConsumerRebalanceListener, TopicPartition

PartitionKey = tuple[str, int]


class PartitionOwner(Protocol):
    """What the listener drives: the verifier."""

    async def take(self, keys: Sequence[PartitionKey]) -> None:
        """Restore ``keys`` before their records are handed out."""
        ...

    async def give_back(self, keys: Sequence[PartitionKey]) -> None:
        """Checkpoint and forget ``keys``."""
        ...


class VerifierListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Routes rebalance callbacks to the verifier, around the application's own listener.

    Revocation: the application's listener first (it may finish and mark a batch), then
    the verifier's checkpoint. Assignment: the verifier's restore first, then the
    application's listener (which may already mark records).
    """

    def __init__(self, owner: PartitionOwner, inner: ConsumerRebalanceListener | None) -> None:
        self._owner = owner
        self._inner = inner

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        revoked = list(revoked)
        if self._inner is not None:
            result = self._inner.on_partitions_revoked(revoked)
            if asyncio.iscoroutine(result):
                await result
        await self._owner.give_back([(tp.topic, tp.partition) for tp in revoked])

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        assigned = list(assigned)
        await self._owner.take([(tp.topic, tp.partition) for tp in assigned])
        if self._inner is not None:
            result = self._inner.on_partitions_assigned(assigned)
            if asyncio.iscoroutine(result):
                await result
