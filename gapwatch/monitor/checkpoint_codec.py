"""Byte formats of checkpoints: the record on the checkpoint topic and the commit pointer.

A checkpoint is one record on gapwatch's compacted checkpoint topic::

    key:    ["gapwatch-checkpoint", 1, "<group>", "<topic>", <partition>]   (JSON, UTF-8)
    value:  b"GWC1" + offset (i64, big-endian) + written_at (f64) + tracker snapshot bytes

``offset`` is the next offset to read: the snapshot is the tracker's state after every
record below it. The group's offset commit for the partition carries, as its metadata,
a pointer to that record (``{"v":1,"p":<checkpoint partition>,"o":<checkpoint offset>}``),
so the commit is what makes a checkpoint current. Decoding is for untrusted bytes: only
:class:`CheckpointDecodeError` escapes.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Final

from gapwatch.errors import GapwatchError

MAGIC: Final = b"GWC1"
_HEADER: Final = struct.Struct(">qd")
KEY_TAG: Final = "gapwatch-checkpoint"


class CheckpointDecodeError(GapwatchError):
    """A checkpoint record or commit pointer that cannot be used."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tracker snapshot and the offset it belongs to."""

    offset: int
    written_at: float
    snapshot: bytes


@dataclass(frozen=True, slots=True)
class Pointer:
    """Where a checkpoint record sits on the checkpoint topic."""

    partition: int
    offset: int


def encode_key(group_id: str, topic: str, partition: int) -> bytes:
    """The record key: one per (group, topic, partition), so compaction keeps the latest."""
    return json.dumps([KEY_TAG, 1, group_id, topic, partition], separators=(",", ":")).encode()


def encode_value(checkpoint: Checkpoint) -> bytes:
    """The record value."""
    return MAGIC + _HEADER.pack(checkpoint.offset, checkpoint.written_at) + checkpoint.snapshot


def decode_value(value: bytes | None) -> Checkpoint:
    """The checkpoint in a record value; raises :class:`CheckpointDecodeError`."""
    if value is None or len(value) < len(MAGIC) + _HEADER.size or not value.startswith(MAGIC):
        raise CheckpointDecodeError("not a version 1 gapwatch checkpoint")
    offset, written_at = _HEADER.unpack_from(value, len(MAGIC))
    if offset < 0:
        raise CheckpointDecodeError("negative offset")
    return Checkpoint(offset, written_at, bytes(value[len(MAGIC) + _HEADER.size :]))


def encode_pointer(pointer: Pointer) -> str:
    """Commit metadata pointing at a checkpoint record (well below Kafka's 4 KiB limit)."""
    return json.dumps({"v": 1, "p": pointer.partition, "o": pointer.offset}, separators=(",", ":"))


def decode_pointer(metadata: str | None) -> Pointer | None:
    """The pointer in commit metadata; ``None`` if the commit carries none (not ours)."""
    if not metadata:
        return None
    try:
        body = json.loads(metadata)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("v") != 1:
        return None
    partition, offset = body.get("p"), body.get("o")
    if not isinstance(partition, int) or not isinstance(offset, int):
        return None
    if partition < 0 or offset < 0:
        return None
    return Pointer(partition, offset)
