"""One canary partition's stream: the stamped record being written, kept until acknowledged.

A lane hands out the record to write next: the one still pending (a failed or timed-out
write is retried with the very same stamp, timestamp and value), else a new one with the
next sequence. The sequence advances only on acknowledgement, so a canary stream never
skips a sequence and an outage never looks like loss; a write that failed on the client
but reached the log anyway shows up as a duplicate, at worst. One write at a time per lane
keeps records in sequence order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gapwatch.core.wire import encode_stamp

Header = tuple[str, bytes]
_FILL: Final = b"gapwatch canary "


@dataclass(frozen=True, slots=True)
class CanaryRecord:
    """A stamped canary record, written as is on every attempt."""

    seq: int
    timestamp_ms: int
    value: bytes
    headers: tuple[Header, ...]


def canary_value(size: int) -> bytes:
    """``size`` bytes of readable filler (what a canary record carries besides its stamp)."""
    return (_FILL * (size // len(_FILL) + 1))[:size]


class Lane:
    """The canary stream of one partition, for one producer life (id and epoch)."""

    __slots__ = ("_epoch", "_next_seq", "_pending", "_producer", "_value", "is_writing")

    def __init__(self, *, producer: str, epoch: int, value: bytes) -> None:
        self._producer = producer
        self._epoch = epoch
        self._value = value
        self._next_seq = 0
        self._pending: CanaryRecord | None = None
        self.is_writing = False

    @property
    def next_seq(self) -> int:
        """The sequence of the record after the last acknowledged one."""
        return self._next_seq

    def record(self, now_ms: int) -> CanaryRecord:
        """The record to write now: the pending one again, or a new one stamped now."""
        if self._pending is None:
            headers = tuple(encode_stamp(self._producer, self._epoch, self._next_seq))
            self._pending = CanaryRecord(self._next_seq, now_ms, self._value, headers)
        return self._pending

    def acknowledged(self, record: CanaryRecord) -> None:
        """``record`` is in the log: the next call to :meth:`record` stamps a new one."""
        if self._pending is record:
            self._pending = None
            self._next_seq = record.seq + 1
