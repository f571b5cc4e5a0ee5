"""Choosing a partition before stamping, for clients whose partitioner runs too late.

A record's sequence belongs to its partition, so a client must know the partition when it
stamps. aiokafka's and the Java client's default partitioner map a key to
``(murmur2(key) & 0x7fffffff) % num_partitions``; librdkafka (confluent-kafka) defaults to
a different hash (``consistent_random``, CRC32), so a confluent-kafka producer that wants
Java-compatible placement must compute it itself, as here, and pass ``partition=``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from aiokafka.partitioner import murmur2


def murmur2_partition(key: bytes, num_partitions: int) -> int:
    """The partition the Java client and aiokafka pick for ``key`` among ``num_partitions``."""
    if num_partitions < 1:
        raise ValueError("num_partitions must be at least 1")
    return int(murmur2(key) & 0x7FFFFFFF) % num_partitions


class PartitionCache:
    """Per-topic partition lists from a client's metadata, rebuilt on every update.

    aiokafka's producer builds two sets and two lists per record to call its partitioner;
    the lists only change when metadata does, so they are kept here and dropped by a
    metadata listener. Built exactly as aiokafka builds them (``list`` of the same sets),
    so the partitioner sees identical arguments.
    """

    __slots__ = ("_cluster", "_topics")

    def __init__(self, cluster: Any) -> None:
        self._cluster = cluster
        self._topics: dict[str, tuple[set[int], list[int], list[int]]] = {}
        cluster.add_listener(self._invalidate)

    def _invalidate(self, _cluster: object) -> None:
        self._topics.clear()

    def get(self, topic: str) -> tuple[set[int], list[int], list[int]] | None:
        """(all partitions, the same as a list, available ones as a list), or None."""
        entry = self._topics.get(topic)
        if entry is None:
            partitions = self._cluster.partitions_for_topic(topic)
            if partitions is None:
                return None
            available = self._cluster.available_partitions_for_topic(topic)
            entry = (partitions, list(partitions), list(available))
            self._topics[topic] = entry
        return entry

    def close(self) -> None:
        """Stop listening to metadata updates."""
        with contextlib.suppress(KeyError):
            self._cluster.remove_listener(self._invalidate)
