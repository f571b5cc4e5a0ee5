"""``/gaps`` bodies assembled from gaps encoded once, not once per request.

Dashboards and scripts poll ``/gaps``, and every request used to turn each gap into a dict
(two RFC 3339 times, enum values) and encode it again: about 20 µs per gap, 3 ms for a page
of 150, on the event loop that also reads Kafka. A :class:`Gap` is immutable (every state
change makes a new one), so its encoded form can be kept for as long as it is the current
version: this cache maps each gap id to its newest version's bytes and checks the gap
object's identity on every hit, so a new version is never served stale.

The cache keeps what the last two pages used, not every gap ever served: dashboards poll
the same first page again and again, and bytes of gaps that left it (or left the store)
would otherwise stay until the cache was full, a few MB that grow with every gap.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from gapwatch.core.model import Gap
from gapwatch.gaps.origins import NOT_MIRRORED, OriginBook

# Beyond this many entries the cache is dropped and rebuilt on demand (two pages of the
# API's largest size fit).
DEFAULT_CAPACITY: Final = 10_000

_Entry = tuple[Gap, str, Mapping[str, Any], bytes]


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

    __slots__ = ("_cache", "_capacity", "_earlier", "_origins")

    def __init__(self, capacity: int = DEFAULT_CAPACITY, origins: OriginBook | None = None) -> None:
        self._capacity = capacity
        self._origins = origins
        # gap id -> (gap, owner, mirror fields, bytes) of what the current page used; the
        # gap is kept to tell, by identity, whether it is still the newest version. The
        # origin book hands out one fields dict per decision, so identity also tells
        # whether the origin changed since the bytes were made.
        self._cache: dict[str, _Entry] = {}
        self._earlier: dict[str, _Entry] = {}  # what the page before used

    def __len__(self) -> int:
        return len(self._cache.keys() | self._earlier.keys())

    def encode(self, gap: Gap, owner: str) -> bytes:
        """The JSON object of ``gap`` owned by ``owner``."""
        fields = NOT_MIRRORED if self._origins is None else self._origins.fields_of(gap)
        hit = self._cache.get(gap.id) or self._earlier.get(gap.id)
        if hit is not None and hit[0] is gap and hit[1] == owner and hit[2] is fields:
            self._cache[gap.id] = hit
            return hit[3]
        if len(self._cache) >= self._capacity:
            self._cache.clear()
            self._earlier.clear()
        body = encode_json(owned_json(gap, owner, fields))
        self._cache[gap.id] = (gap, owner, fields, body)
        return body

    def page(self, items: Sequence[tuple[Gap, str]], next_cursor: str | None) -> bytes:
        """``{"gaps": [...], "next_cursor": ...}`` for ``items`` in their order."""
        # A new page: what the one before last used and this one does not is let go.
        self._earlier, self._cache = self._cache, {}
        gaps = b",".join(self.encode(gap, owner) for gap, owner in items)
        return b'{"gaps":[' + gaps + b'],"next_cursor":' + encode_json(next_cursor) + b"}"
