"""The snapshot's ring columns as bytes: packed little-endian arrays, byte-shuffled.

Packing, unpacking and (un)shuffling all run in C (``array`` and slicing), so a full
ring costs a few milliseconds, not a Python loop per entry. Shuffling groups the same
byte of every value together; steadily climbing offsets and timestamps then turn into
long runs that deflate well.
"""

from __future__ import annotations

import sys
from array import array
from typing import Any


def shuffle_bytes(data: bytes, width: int) -> bytes:
    """``data`` (values of ``width`` bytes each) regrouped by byte position: byte 0 of
    every value, then byte 1 of every value, and so on. Slicing runs in C."""
    return b"".join(data[i::width] for i in range(width))


def unshuffle_bytes(data: bytes, width: int) -> bytes:
    """The inverse of :func:`shuffle_bytes`; ``len(data)`` must be a multiple of ``width``."""
    count = len(data) // width
    out = bytearray(len(data))
    for i in range(width):
        out[i::width] = data[i * count : (i + 1) * count]
    return bytes(out)


def pack_column(code: str, values: list[Any]) -> bytes:
    """``values`` as an ``array`` of type ``code``, little-endian whatever the host."""
    packed = array(code, values)
    if sys.byteorder != "little":
        packed.byteswap()
    return packed.tobytes()


def unpack_column(code: str, data: bytes) -> list[Any]:
    """The inverse of :func:`pack_column`."""
    values = array(code)
    values.frombytes(data)
    if sys.byteorder != "little":
        values.byteswap()
    return values.tolist()
