"""Stamp parsing on the monitor's hot path: the common record in a few operations.

:func:`gapwatch.core.wire.parse_stamp` is the reference parser: it validates everything,
decodes and checks the producer id and parses both numbers for every record, which was a
third of the monitor's time per record in ``bench/bench_monitor.py``. Almost every record
a monitor reads is a well-formed stamp from a producer it has seen before, with the three
headers alone and in the documented order. :class:`StampReader` recognises exactly that
shape, takes (producer, epoch) from a cache keyed by their raw bytes, and parses only the
sequence. Anything else (other headers, another order, a producer not cached yet, a
sequence that is not plain digits) goes to ``parse_stamp``, so results and errors are
always the reference parser's: the cache only holds pairs ``parse_stamp`` accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from gapwatch.core.wire import HEADER_EPOCH, HEADER_PRODUCER, HEADER_SEQ, Stamp, parse_stamp

# Cached (producer, epoch) pairs; beyond this the cache starts over (a producer restart
# makes a new epoch, so the set of live pairs is small but grows over a long run).
MAX_CACHED: Final = 10_000
# Up to 19 decimal digits is always below 2**64 - 1, so no range check is needed.
MAX_FAST_DIGITS: Final = 19

# A frozen dataclass's __init__ goes through object.__setattr__ per field, which made
# building the Stamp the dearest step left per record (~0.8 µs). Filling its slots through
# their descriptors builds the identical value (equal, hashable, still immutable to
# callers) in about half the time.
_new = object.__new__
_set_producer = Stamp.__dict__["producer"].__set__
_set_epoch = Stamp.__dict__["epoch"].__set__
_set_seq = Stamp.__dict__["seq"].__set__


def _stamp(producer: str, epoch: int, seq: int) -> Stamp:
    stamp: Stamp = _new(Stamp)
    _set_producer(stamp, producer)
    _set_epoch(stamp, epoch)
    _set_seq(stamp, seq)
    return stamp


class StampReader:
    """Parses stamps like :func:`parse_stamp`, caching the validated producer and epoch."""

    __slots__ = ("known",)

    def __init__(self) -> None:
        # (raw producer, raw epoch) -> the validated pair. Public so the record path
        # (gapwatch.monitor.ingest.recordpath) can look up inline; only read() writes it.
        self.known: dict[tuple[object, object], tuple[str, int]] = {}

    def read(self, headers: Sequence[tuple[str, bytes | None]] | None) -> Stamp | None:
        """The record's stamp, ``None`` if unstamped; raises ``MalformedStampError``."""
        try:
            if headers is None or len(headers) != 3:
                return parse_stamp(headers)
            first, second, third = headers
            if first[0] != HEADER_PRODUCER or second[0] != HEADER_EPOCH or third[0] != HEADER_SEQ:
                return parse_stamp(headers)
            key = (first[1], second[1])
            known = self.known.get(key)
            raw = third[1]
        except (TypeError, ValueError, IndexError):
            # Not (name, value) pairs, or unhashable values: the reference parser decides.
            return parse_stamp(headers)
        if (
            known is not None
            and type(raw) is bytes
            and 0 < len(raw) <= MAX_FAST_DIGITS
            and raw.isdigit()
        ):
            return _stamp(known[0], known[1], int(raw))
        stamp = parse_stamp(headers)
        if stamp is not None:
            if len(self.known) >= MAX_CACHED:
                self.known.clear()
            self.known[key] = (stamp.producer, stamp.epoch)
        return stamp
