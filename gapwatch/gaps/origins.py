"""Which watched topics are mirror copies, and the origin decided for each of their gaps.

:class:`OriginBook` is what ``/gaps`` asks for the four mirror fields of a gap
(``origin``, ``origin_reason``, ``source_cluster``, ``source_topic``); the mirror
attributor (:mod:`gapwatch.monitor.mirror.attributor`) writes the decisions. Every field is
``null`` for a topic that is not a copy; on a copy, ``origin`` is ``null`` while the gap is
not a loss (open, healed, truncated, unknown), ``pending`` from confirmation until the
source has been read, then the decision. The dict of fields is made once per change and
returned again on every ask, so the ``/gaps`` encoder can cache by its identity. Sinks
that pushed a gap before its origin was known subscribe to the decisions
(:meth:`OriginBook.subscribe`) to push it again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

from gapwatch.core.model import Gap, GapState
from gapwatch.core.origin import PENDING, Attribution, Reason
from gapwatch.core.replication import MirroredTopic, ReplicationPolicy, source_of

# The gap states an origin is decided for: the records were called lost.
ATTRIBUTED_STATES: Final = frozenset((GapState.CONFIRMED, GapState.RECOVERED))
NOT_MIRRORED: Final[Mapping[str, Any]] = {
    "origin": None,
    "origin_reason": None,
    "source_cluster": None,
    "source_topic": None,
}
DEFAULT_LIMIT: Final = 100_000


class OriginBook:
    """Mirrored topics (by MM2's naming) and the attribution of each of their gaps."""

    __slots__ = ("_aliases", "_decided", "_fields", "_limit", "_listeners", "_policy", "_topics")

    def __init__(
        self,
        *,
        aliases: tuple[str, ...],
        policy: ReplicationPolicy,
        limit: int = DEFAULT_LIMIT,
    ) -> None:
        self._aliases = aliases
        self._policy: ReplicationPolicy = policy
        self._limit = limit
        self._topics: dict[str, MirroredTopic | None] = {}
        # gap id -> attribution, oldest decision first (evicted first beyond the limit).
        self._decided: OrderedDict[str, Attribution] = OrderedDict()
        # (gap id or topic, attribution or None) -> the fields dict served for it.
        self._fields: dict[tuple[str, Attribution | None], Mapping[str, Any]] = {}
        self._listeners: list[Callable[[str], None]] = []

    def __len__(self) -> int:
        return len(self._decided)

    @property
    def is_active(self) -> bool:
        """Whether any source cluster is configured (else nothing is a copy)."""
        return bool(self._aliases)

    def mirrored(self, topic: str) -> MirroredTopic | None:
        """What ``topic`` is a copy of, or ``None``."""
        try:
            return self._topics[topic]
        except KeyError:
            found = source_of(topic, aliases=self._aliases, policy=self._policy)
            self._topics[topic] = found
            return found

    def get(self, gap_id: str) -> Attribution | None:
        """The decided attribution of ``gap_id`` (``None``: not decided, or not a copy)."""
        return self._decided.get(gap_id)

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """Call ``listener`` with the gap id after every decision (quick, never blocking:
        a sink notes it and returns)."""
        self._listeners.append(listener)

    def decide(self, gap_id: str, attribution: Attribution) -> None:
        """Record the origin of ``gap_id`` (replacing an earlier one), then tell the
        subscribers."""
        previous = self._decided.pop(gap_id, None)
        if previous is not None:
            self._fields.pop((gap_id, previous), None)
        self._decided[gap_id] = attribution
        while len(self._decided) > self._limit:
            old_id, old = self._decided.popitem(last=False)
            self._fields.pop((old_id, old), None)
        for listener in self._listeners:
            listener(gap_id)

    def needs_lookup(self, gap: Gap) -> bool:
        """Whether ``gap`` is a loss on a copy whose origin is not decided yet, or was left
        unknown because the source could not be read (worth asking again)."""
        if gap.state not in ATTRIBUTED_STATES or self.mirrored(gap.topic) is None:
            return False
        decided = self._decided.get(gap.id)
        return decided is None or decided.reason is Reason.SOURCE_UNREACHABLE

    def fields_of(self, gap: Gap) -> Mapping[str, Any]:
        """The four mirror fields of ``gap`` (the same dict until its origin changes)."""
        mirrored = self.mirrored(gap.topic)
        if mirrored is None:
            return NOT_MIRRORED
        if gap.state not in ATTRIBUTED_STATES:
            return self._cached(gap.topic, None, mirrored, None)
        decided = self._decided.get(gap.id)
        return self._cached(gap.id, decided or PENDING, mirrored, decided)

    def _cached(
        self,
        key: str,
        attribution: Attribution | None,
        mirrored: MirroredTopic,
        decided: Attribution | None,
    ) -> Mapping[str, Any]:
        # Pending fields are shared per topic; decided ones are kept per gap.
        cache_key = (key if decided is not None else mirrored.topic, attribution)
        fields = self._fields.get(cache_key)
        if fields is None:
            fields = {
                "origin": None if attribution is None else attribution.origin.value,
                "origin_reason": None if attribution is None else attribution.text,
                "source_cluster": mirrored.source_cluster,
                "source_topic": mirrored.source_topic,
            }
            self._fields[cache_key] = fields
        return fields
