"""One shared copy of each string that decoded gap changes repeat.

Every gap change read back from the gap log carries the same few names again and again
(group, instance, topic, producer id); decoded as they are, each gap kept in the fleet
view or the ``/events`` buffer would hold its own copies. A :class:`StringTable` hands out
the first copy it saw of each. It is bounded, since the gap log is written by other
instances and may name any number of producers: past ``limit`` distinct strings it starts
over (the strings already handed out stay valid; later ones are shared again from then
on). ``sys.intern`` is not used because interned strings live as long as the process.
"""

from __future__ import annotations

from typing import Final

DEFAULT_LIMIT: Final = 4096


class StringTable:
    """A bounded table of shared strings: :meth:`share` returns the table's copy."""

    __slots__ = ("_limit", "_strings")

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self._limit = limit
        self._strings: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._strings)

    def share(self, text: str) -> str:
        """The table's copy of ``text`` (``text`` itself the first time it is seen)."""
        shared = self._strings.get(text)
        if shared is not None:
            return shared
        if len(self._strings) >= self._limit:
            self._strings.clear()
        self._strings[text] = text
        return text
