"""Wire format version 1: the three record headers that stamp a record.

The contract is written down for other clients in ``docs/wire-format.md``; this module
is its reference implementation. Parsing is on the monitor's hot path, so it is a single
pass over the record's headers with no regular expressions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from gapwatch.errors import MalformedStampError

WIRE_FORMAT_VERSION: Final = 1

HEADER_PRODUCER: Final = "gapwatch-producer"
HEADER_EPOCH: Final = "gapwatch-epoch"
HEADER_SEQ: Final = "gapwatch-seq"

MAX_PRODUCER_ID_CHARS: Final = 128
MAX_U64: Final = 2**64 - 1
# 2**64 - 1 has 20 decimal digits; anything longer cannot be a valid u64 whatever it holds.
_MAX_U64_DIGITS: Final = 20

HEADER_NAMES: Final = frozenset((HEADER_PRODUCER, HEADER_EPOCH, HEADER_SEQ))
"""The names of the three stamp headers: a header with one of them is part of a stamp."""


@dataclass(frozen=True, slots=True)
class Stamp:
    """What a stamped record claims about itself."""

    producer: str
    epoch: int
    seq: int


def validate_producer_id(producer: str) -> str:
    """Return ``producer`` if it is a valid producer id, else raise :class:`MalformedStampError`."""
    if not isinstance(producer, str):
        raise MalformedStampError("gapwatch-producer is not text")
    if not 1 <= len(producer) <= MAX_PRODUCER_ID_CHARS:
        raise MalformedStampError(
            f"gapwatch-producer must be 1..{MAX_PRODUCER_ID_CHARS} characters"
        )
    if not producer.isprintable():
        raise MalformedStampError("gapwatch-producer has non-printable characters")
    return producer


def validate_epoch(epoch: int) -> int:
    """Return ``epoch`` if it is a valid epoch (an unsigned 64-bit integer), else raise
    :class:`MalformedStampError`."""
    if not 0 <= epoch <= MAX_U64:
        raise MalformedStampError("epoch must be an unsigned 64-bit integer")
    return epoch


def _parse_u64(name: str, raw: object) -> int:
    # bytes.isdigit() is ASCII-only, which also rules out the signs, spaces and
    # underscores that int() would otherwise accept.
    if not isinstance(raw, bytes | bytearray):
        raise MalformedStampError(f"{name} has no value")
    if not raw or len(raw) > _MAX_U64_DIGITS or not raw.isdigit():
        raise MalformedStampError(f"{name} is not an unsigned decimal integer")
    value = int(raw)
    if value > MAX_U64:
        raise MalformedStampError(f"{name} does not fit in 64 bits")
    return value


def _parse_producer(raw: object) -> str:
    if not isinstance(raw, bytes | bytearray):
        raise MalformedStampError("gapwatch-producer has no value")
    try:
        producer = bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedStampError("gapwatch-producer is not UTF-8") from None
    return validate_producer_id(producer)


def parse_stamp(headers: Iterable[tuple[str, bytes | None]] | None) -> Stamp | None:
    """Read the stamp from a record's headers.

    Returns ``None`` for an unstamped record (none of the three headers present) and
    raises :class:`MalformedStampError` when some are missing, repeated or unparsable.
    No other exception escapes, whatever the headers hold.
    """
    if not headers:
        return None
    producer_raw: object = None
    epoch_raw: object = None
    seq_raw: object = None
    found = 0
    try:
        for name, value in headers:
            if name not in HEADER_NAMES:
                continue
            found += 1
            if name == HEADER_SEQ:
                if seq_raw is not None:
                    raise MalformedStampError("gapwatch-seq is repeated")
                seq_raw = value if value is not None else b""
            elif name == HEADER_EPOCH:
                if epoch_raw is not None:
                    raise MalformedStampError("gapwatch-epoch is repeated")
                epoch_raw = value if value is not None else b""
            else:
                if producer_raw is not None:
                    raise MalformedStampError("gapwatch-producer is repeated")
                producer_raw = value if value is not None else b""
    except MalformedStampError:
        raise
    except (TypeError, ValueError):
        # Not a sequence of (name, value) pairs: treat as damaged, never crash.
        raise MalformedStampError("headers are not (name, value) pairs") from None
    if found == 0:
        return None
    if producer_raw is None:
        raise MalformedStampError("missing gapwatch-producer")
    if epoch_raw is None:
        raise MalformedStampError("missing gapwatch-epoch")
    if seq_raw is None:
        raise MalformedStampError("missing gapwatch-seq")
    return Stamp(
        producer=_parse_producer(producer_raw),
        epoch=_parse_u64(HEADER_EPOCH, epoch_raw),
        seq=_parse_u64(HEADER_SEQ, seq_raw),
    )


def encode_stamp(producer: str, epoch: int, seq: int) -> list[tuple[str, bytes]]:
    """The three headers for one record, in the documented order."""
    validate_producer_id(producer)
    validate_epoch(epoch)
    if not 0 <= seq <= MAX_U64:
        raise MalformedStampError("seq must be an unsigned 64-bit integer")
    return [
        (HEADER_PRODUCER, producer.encode("utf-8")),
        (HEADER_EPOCH, str(epoch).encode("ascii")),
        (HEADER_SEQ, str(seq).encode("ascii")),
    ]
