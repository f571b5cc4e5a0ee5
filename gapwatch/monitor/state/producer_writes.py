"""How each stamped producer writes to each topic, as its latest reports say.

Fed by the report reader with every decoded report (its write settings and the record's
timestamp); read by the durability audit, which names producers writing with ``acks`` other
than ``all`` or without idempotence. A producer counts for a topic while its newest report
about that topic is younger than ``window`` seconds and not its final one: a producer that
closed, or has been silent for the window, no longer writes there. Reports that say neither
``acks`` nor ``idempotence`` (older producers) are not recorded. Bounded: at most
``max_entries`` (topic, producer, epoch) entries, the least recently reported dropped first.
"""

from __future__ import annotations

from typing import Final

from gapwatch.core.durability import ProducerWrites
from gapwatch.core.model import ProducerReport, WriteSettings

# Active producers report whenever a stream changes (every few seconds while they send);
# one that has not reported for an hour is taken as gone.
DEFAULT_WINDOW_S: Final = 3600.0
# Bounds against a flood of producer ids or topics in reports (untrusted input).
DEFAULT_MAX_PER_TOPIC: Final = 10_000
DEFAULT_MAX_TOPICS: Final = 10_000

_Entry = tuple[float, WriteSettings]  # reported at, settings


class ProducerWritesBook:
    """The latest write settings of every (topic, producer, epoch) seen in reports."""

    def __init__(
        self,
        *,
        window: float = DEFAULT_WINDOW_S,
        max_per_topic: int = DEFAULT_MAX_PER_TOPIC,
        max_topics: int = DEFAULT_MAX_TOPICS,
    ) -> None:
        self._window = window
        self._max_per_topic = max_per_topic
        self._max_topics = max_topics
        # Per topic, (producer, epoch) -> entry; insertion order is report order (an entry is
        # re-inserted on each report), so the first is the least recently reported.
        self._by_topic: dict[str, dict[tuple[str, int], _Entry]] = {}

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._by_topic.values())

    def note(self, report: ProducerReport, settings: WriteSettings, *, at: float) -> None:
        """Record what ``report`` (written at ``at``, seconds) says about its producer."""
        key = (report.producer, report.epoch)
        entries = self._by_topic.get(report.topic)
        if report.final:
            if entries is not None:
                entries.pop(key, None)
            return
        if settings.acks is None and settings.idempotence is None:
            return
        if entries is None:
            entries = self._by_topic[report.topic] = {}
            while len(self._by_topic) > self._max_topics:
                del self._by_topic[next(iter(self._by_topic))]
        previous = entries.pop(key, None)
        if previous is not None and previous[0] > at:
            at = previous[0]  # reports of one producer come from several partitions
        entries[key] = (at, settings)
        while len(entries) > self._max_per_topic:
            del entries[next(iter(entries))]

    def writers(self, topic: str, now: float) -> list[ProducerWrites]:
        """The producers writing to ``topic`` as of ``now``, one per producer (its newest
        epoch), sorted by producer id."""
        newest: dict[str, tuple[int, WriteSettings]] = {}
        cutoff = now - self._window
        for (producer, epoch), (at, settings) in self._by_topic.get(topic, {}).items():
            if at < cutoff:
                continue
            known = newest.get(producer)
            if known is None or epoch > known[0]:
                newest[producer] = (epoch, settings)
        return [ProducerWrites(p, newest[p][1]) for p in sorted(newest)]

    def forget_older_than(self, now: float) -> None:
        """Drop entries whose last report is older than the window (and emptied topics)."""
        cutoff = now - self._window
        for topic, entries in list(self._by_topic.items()):
            for key in [k for k, (at, _) in entries.items() if at < cutoff]:
                del entries[key]
            if not entries:
                del self._by_topic[topic]
