"""``/gaps`` bodies assembled from gaps encoded once, not once per request.

Dashboards and scripts poll ``/gaps``, and every request used to turn each gap into a dict
(two RFC 3339 times, enum values) and encode it again: about 20 µs per gap, 3 ms for a page
of 150, on the event loop that also reads Kafka. A :class:`Gap` is immutable (every state
change makes a new one), so its encoded form can be kept for as long as it is the current
version: this cache maps the gap object to its bytes and checks identity on every hit, so
a new version is never served stale.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from gapwatch.core.model import Gap
from gapwatch.gaps.origins import NOT_MIRRORED, OriginBook

# Beyond this many entries the cache is dropped and rebuilt on demand: it then holds only
# what recent requests asked for, and old gap versions do not pile up.
DEFAULT_CAPACITY: Final = 10_000


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON, as Starlette's ``JSONResponse`` writes it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def owned_json(
    gap: Gap, owner: str, mirror_fields: Mapping[str, Any] = NOT_MIRRORED
) -> dict[str, Any]:
    """A gap as the API shows it: its fields, where it came from if its topic is a mirror
    copy (:mod:`gapwatch.gaps.origins`), and the instance that owns it."""
    return {**gap.to_json(), **mirror_fields, "instance": owner}


class GapEncoder:
    """Encodes owned gaps for the API, each (gap version, owner, origin) once."""

    __slots__ = ("_cache", "_capacity", "_origins")

    def __init__(self, capacity: int = DEFAULT_CAPACITY, origins: OriginBook | None = None) -> None:
        self._capacity = capacity
        self._origins = origins
        # id(gap) -> (gap, owner, mirror fields, bytes); the gap is kept so that its id is
        # not reused. The origin book hands out one fields dict per decision, so identity
        # tells whether the origin changed since the bytes were made.
        self._cache: dict[int, tuple[Gap, str, Mapping[str, Any], bytes]] = {}

    def __len__(self) -> int:
        return len(self._cache)

    def encode(self, gap: Gap, owner: str) -> bytes:
        """The JSON object of ``gap`` owned by ``owner``."""
        fields = NOT_MIRRORED if self._origins is None else self._origins.fields_of(gap)
        hit = self._cache.get(id(gap))
        if hit is not None and hit[0] is gap and hit[1] == owner and hit[2] is fields:
            return hit[3]
        if len(self._cache) >= self._capacity:
            self._cache.clear()
        body = encode_json(owned_json(gap, owner, fields))
        self._cache[id(gap)] = (gap, owner, fields, body)
        return body

    def page(self, items: Sequence[tuple[Gap, str]], next_cursor: str | None) -> bytes:
        """``{"gaps": [...], "next_cursor": ...}`` for ``items`` in their order."""
        gaps = b",".join(self.encode(gap, owner) for gap, owner in items)
        return b'{"gaps":[' + gaps + b'],"next_cursor":' + encode_json(next_cursor) + b"}"
