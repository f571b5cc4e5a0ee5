"""The one place on the producer side that uses aiokafka's private members: enqueueing a
record into its batch directly (:class:`DirectEnqueue`), and telling whether its sender
task died (:func:`has_dead_sender`).

Why enqueue directly: :class:`~gapwatch.producer.StampedProducer` has already serialised
the record and chosen its partition from cached metadata when it enqueues it.
``AIOKafkaProducer.send()`` would look the topic's metadata up again and re-check the
partition (two set builds and a coroutine per record: 10-15 % of throughput, see
``docs/benchmarks.md``), so the producer does what ``send()`` does after that point
itself: the size check (``_serialize``), then ``_message_accumulator.add_message`` with
``_request_timeout_ms`` as the timeout.

Checked against: aiokafka 0.14.0 (``AIOKafkaProducer.send`` read line by line; the project
pins ``aiokafka>=0.14,<0.15``). :meth:`DirectEnqueue.of` returns ``None``, and the
producer falls back to the public ``send()``, for any other minor version, for a
transactional producer (whose ``send()`` also checks the transaction state) and when one
of the members is missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final

import aiokafka
from aiokafka import AIOKafkaProducer

CHECKED_AIOKAFKA_VERSION: Final = (0, 14)


class DirectEnqueue:
    """The parts of one ``AIOKafkaProducer`` that enqueue a record into its batches.

    What ``send()`` does once the partition is chosen, in order: ``serialize(key, value,
    headers)`` (the size check: raises as ``send()`` would for a record that is too
    large), then ``await add_message(tp, key, value, timeout_s, timestamp_ms=...,
    headers=...)``, which returns the delivery future (waiting while the partition's
    batch is full). They are handed out as bound methods, not wrapped, because the
    producer's ``send()`` calls them on its hot path, where a call costs about as much
    as the work it does.
    """

    __slots__ = ("add_message", "serialize", "timeout_s")

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.serialize: Callable[..., Any] = producer._serialize
        self.add_message: Callable[..., Awaitable[asyncio.Future[Any]]] = (
            producer._message_accumulator.add_message
        )
        self.timeout_s: float = producer._request_timeout_ms / 1000

    @classmethod
    def of(cls, producer: AIOKafkaProducer) -> DirectEnqueue | None:
        """The direct path of ``producer``, or ``None`` if it must use ``send()``."""
        version = tuple(int(part) for part in aiokafka.__version__.split(".")[:2] if part.isdigit())
        if (
            version != CHECKED_AIOKAFKA_VERSION
            or getattr(producer._txn_manager, "transactional_id", None) is not None
            or not hasattr(producer, "_serialize")
            or not hasattr(producer._message_accumulator, "add_message")
        ):
            return None
        return cls(producer)


def has_dead_sender(producer: AIOKafkaProducer) -> bool:
    """Whether ``producer``'s background sender task has ended while the producer is open.

    Seen with ``acks=0`` across a broker kill: a ``ConnectionResetError`` from the reset
    connection is not a ``KafkaError``, the sender does not catch it, and every later send
    fails with ``KafkaError('Unexpected error during batch delivery')``. aiokafka has no
    public way to ask, so this reads ``_sender.sender_task`` (aiokafka 0.14); ``False`` if
    those members are missing.
    """
    task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    return bool(task is not None and task.done())
