"""What StampedProducer relies on from aiokafka, and the record type of its tools API.

* :func:`has_known_send_path`: the hot path appends to aiokafka's accumulator itself,
  skipping what ``AIOKafkaProducer.send()`` would redo (metadata lookup, partition
  re-check). That is only right for the aiokafka version whose ``send()`` was read line
  by line (0.14, pinned in ``pyproject.toml``); any other version uses ``send()``.
* :func:`acks_label`: the acks setting, as reports show it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiokafka


@dataclass(frozen=True, slots=True)
class StampedRecord:
    """A record with its partition chosen and its sequence assigned, not yet sent.

    Made by :meth:`StampedProducer.stamp` for tools that need to act on a stamped record
    themselves (the load generator's fault injection); applications use ``send()``.
    """

    topic: str
    partition: int
    seq: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None
    headers: tuple[tuple[str, bytes], ...]


def has_known_send_path(producer: Any) -> bool:
    """Whether ``producer`` is an aiokafka whose ``send()`` we know step by step."""
    version = tuple(int(part) for part in aiokafka.__version__.split(".")[:2] if part.isdigit())
    return (
        version == (0, 14)
        and getattr(producer._txn_manager, "transactional_id", None) is None
        and hasattr(producer, "_serialize")
        and hasattr(producer._message_accumulator, "add_message")
    )


def acks_label(kwargs: dict[str, Any]) -> str:
    """The acks a producer built from ``kwargs`` uses: ``"0"``, ``"1"`` or ``"all"``."""
    acks = kwargs.get("acks")
    if acks is None:
        # aiokafka's defaults: all with idempotence, else 1.
        return "all" if kwargs.get("enable_idempotence") else "1"
    return "all" if acks in ("all", -1) else str(acks)
