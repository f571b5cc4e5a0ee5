"""The one place that reads aiokafka consumer internals, for what its public API lacks.

Two facts the monitor needs have no public accessor in aiokafka:

* **A partition's fetch state without waiting**: the consumer's position, the high
  watermark of the latest fetch response and when that response arrived. The public
  ``position()`` awaits while the position is unknown and can wait through a rebalance,
  which would deadlock with the rebalance listener on the monitor's lock; ``highwater()``
  asserts assignment. The consumer's position also steps over transaction markers, which
  "last record + 1" would not: without it a transactional partition would never look
  caught up. Read from ``consumer._subscription``.
* **A partition's leader**: the cluster metadata the fetcher itself routes by, read from
  ``consumer._client.cluster``.
* **A metadata refresh now** (tests waiting for a topic just created), instead of at the
  next ``metadata_max_age_ms``: ``consumer._client.force_metadata_update()``.

Checked against aiokafka 0.14.0 (the version ``pyproject.toml`` pins, ``>=0.14,<0.15``):
``SubscriptionState.subscription.assignment.state_value(tp)`` with ``has_valid_position``,
``position``, ``highwater`` and ``timestamp``; ``AIOKafkaClient.cluster`` with
``leader_for_partition(tp)`` and ``force_metadata_update()``. A new aiokafka minor
version must be checked again here before the pin moves. ``pyproject.toml`` lets ruff's
``SLF001`` pass for this module only.
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition


def fetch_state(
    consumer: AIOKafkaConsumer, tp: TopicPartition
) -> tuple[int | None, int | None, int | None]:
    """(position, high watermark, when it was fetched in ms) of ``tp``, without waiting.

    ``(None, None, None)`` while ``tp`` is not assigned; the position is ``None`` while it
    is not known yet.
    """
    subscription = consumer._subscription.subscription
    assignment = None if subscription is None else subscription.assignment
    tp_state = None if assignment is None else assignment.state_value(tp)
    if tp_state is None:
        return None, None, None
    position = tp_state.position if tp_state.has_valid_position else None
    return position, tp_state.highwater, tp_state.timestamp


def partition_leader(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    """The broker id leading ``tp`` in the consumer's cluster metadata (``None`` or negative
    while unknown)."""
    leader: int | None = consumer._client.cluster.leader_for_partition(tp)
    return leader


async def refresh_metadata(consumer: AIOKafkaConsumer) -> None:
    """Ask the cluster for fresh metadata now (new topics, partitions, leaders)."""
    await consumer._client.force_metadata_update()
