"""``StampedBatch``: the batch-building API (``create_batch``/``send_batch``) with stamps.

Sequences can only be assigned when the batch is submitted, since only then are its
topic and partition known and its place in the partition's order fixed. So the batch
keeps the appended records and, to answer "is it full?" exactly as aiokafka's
``BatchBuilder`` would, also appends each one to a probe ``BatchBuilder`` with the
longest possible stamp (a 20-digit sequence). The real batch built at submission, with
the real (never longer) stamps, then always fits. :meth:`StampedProducer.send_batch`
builds it, under the partition's turn, and enqueues it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

from gapwatch.core.wire import HEADER_EPOCH, HEADER_PRODUCER, HEADER_SEQ, MAX_PRODUCER_ID_CHARS

Record = tuple[Any, bytes | None, bytes | None, list[tuple[str, bytes]]]

# The largest stamp any producer can carry: a 128-character id of 4-byte UTF-8
# characters and two 20-digit numbers.
_WORST_STAMP: Final = [
    (HEADER_PRODUCER, b"\xf0\x9f\x98\x80" * MAX_PRODUCER_ID_CHARS),
    (HEADER_EPOCH, b"9" * 20),
    (HEADER_SEQ, b"9" * 20),
]


class StampedBatch:
    """A batch of records for :meth:`StampedProducer.send_batch`.

    Same methods as aiokafka's ``BatchBuilder``. The metadata returned by
    :meth:`append` describes the record with the longest possible stamp, so its size
    may exceed the real one by a few dozen bytes.
    """

    __slots__ = ("_key_serializer", "_probe", "_records", "_value_serializer")

    def __init__(
        self,
        *,
        probe: Any,
        key_serializer: Callable[[Any], bytes | None] | None,
        value_serializer: Callable[[Any], bytes | None] | None,
    ) -> None:
        self._probe = probe
        self._key_serializer = key_serializer
        self._value_serializer = value_serializer
        self._records: list[Record] = []

    def append(
        self,
        *,
        timestamp: Any,
        key: Any,
        value: Any,
        headers: Iterable[tuple[str, bytes]] | None = None,
    ) -> Any:
        """Add a record; returns its metadata, or ``None`` if the batch is full or closed."""
        key_bytes = key if self._key_serializer is None else self._key_serializer(key)
        value_bytes = value if self._value_serializer is None else self._value_serializer(value)
        user_headers = list(headers) if headers else []
        metadata = self._probe.append(
            timestamp=timestamp,
            key=key_bytes,
            value=value_bytes,
            headers=user_headers + _WORST_STAMP,
        )
        if metadata is not None:
            self._records.append((timestamp, key_bytes, value_bytes, user_headers))
        return metadata

    def close(self) -> None:
        """Refuse further records."""
        self._probe.close()

    def size(self) -> int:
        """Upper bound of the batch's size in bytes."""
        size: int = self._probe.size()
        return size

    def record_count(self) -> int:
        """How many records were appended."""
        return len(self._records)

    def records(self) -> Iterator[Record]:
        """The appended records: (timestamp, key bytes, value bytes, caller's headers)."""
        return iter(self._records)
