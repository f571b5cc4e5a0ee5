"""Checks for the fields of an untrusted snapshot, used only by :mod:`gapwatch.core.snapshot`.

Each check returns the value when it has the expected type and range and raises
:class:`_BadFieldError` otherwise; :func:`gapwatch.core.snapshot.decode` turns that into
:class:`~gapwatch.errors.SnapshotError` at its boundary. The names keep their leading
underscore: they are the snapshot decoder's internals, not an API.
"""

from __future__ import annotations

import math
from typing import Any

from gapwatch.core.wire import MAX_U64


class _BadFieldError(Exception):
    """Internal: a field failed validation (converted to SnapshotError at the boundary)."""


def _int(v: object, lo: int = 0, hi: int = MAX_U64) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise _BadFieldError(f"bad integer {v!r:.40}")
    return v


def _opt_int(v: object, lo: int = 0, hi: int = MAX_U64) -> int | None:
    return None if v is None else _int(v, lo, hi)


def _float(v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise _BadFieldError(f"bad time {v!r:.40}")
    return float(v)


def _opt_float(v: object) -> float | None:
    return None if v is None else _float(v)


def _str(v: object) -> str:
    if not isinstance(v, str):
        raise _BadFieldError("bad text")
    return v


def _list(v: object, length: int | None = None) -> list[Any]:
    if not isinstance(v, list) or (length is not None and len(v) != length):
        raise _BadFieldError("bad list")
    return v


def _bool(v: object) -> bool:
    if not isinstance(v, bool):
        raise _BadFieldError("bad flag")
    return v
