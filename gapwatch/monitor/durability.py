"""The monitor's durability audit: the watched topics' facts, kept current off the hot path.

Every ``refresh`` seconds (``--durability-refresh``) a task of its own reads the watched
topics' settings and placement (:class:`~gapwatch.kafka.topic_facts.TopicFactsReader`, one
Metadata and one DescribeConfigs request, bounded by a timeout) and keeps them. The findings
are computed when asked (``GET /topics``, each scrape) from those facts and the producers'
write settings as their reports say now (:class:`ProducerWritesBook`), so a producer's
report counts at once and a config change within one refresh. The consumer loop never
waits for any of it.

A failed refresh (a broker unreachable, an ACL missing) is logged and counted, and the
facts of the last successful one are kept: findings do not vanish because the audit could
not look. With a topic pattern, the watched topics are those of the cluster matching it,
found again at each refresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from gapwatch.core.durability import TopicAudit, TopicSettings, audit
from gapwatch.kafka.topic_facts import TopicFactsReader
from gapwatch.monitor.state.producer_writes import ProducerWritesBook

log = logging.getLogger(__name__)


class DurabilityAudit:
    """The latest facts of the watched topics and the task that refreshes them."""

    def __init__(
        self,
        *,
        reader: TopicFactsReader,
        writes: ProducerWritesBook,
        topics: tuple[str, ...],
        topic_pattern: str | None,
        refresh: float,
        timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._reader = reader
        self.writes = writes
        self._topics = topics
        self._pattern = topic_pattern
        self.refresh_interval = refresh
        self._timeout = timeout
        self._clock = clock
        self._facts: dict[str, TopicSettings] = {}
        self._is_connected = False
        self.audited_at: float | None = None
        self.last_error: str | None = None
        self.refreshes = 0
        self.failures = 0

    def record(self, facts: Mapping[str, TopicSettings], at: float) -> None:
        """Keep ``facts`` (read at ``at``) as the watched topics' current facts."""
        self._facts = dict(facts)
        self.audited_at = at
        self.last_error = None
        self.refreshes += 1

    def audits(self) -> list[TopicAudit]:
        """Every watched topic's facts and findings as of now, sorted by topic."""
        now = self._clock()
        return [
            audit(settings, self.writes.writers(topic, now))
            for topic, settings in sorted(self._facts.items())
        ]

    def topics_json(self) -> dict[str, Any]:
        """The body of ``GET /topics``."""
        return {
            "refresh_interval": self.refresh_interval,
            "audited_at": self.audited_at,
            "error": self.last_error,
            "topics": [a.to_json() for a in self.audits()],
        }

    async def refresh_once(self) -> bool:
        """Read the watched topics' facts once; False (logged, counted) if that failed."""
        try:
            async with asyncio.timeout(self._timeout):
                if not self._is_connected:
                    await self._reader.start()
                    self._is_connected = True
                topics = self._topics
                if self._pattern is not None:
                    topics = tuple(await self._reader.matching_topics(self._pattern))
                facts = await self._reader.read(topics)
        except Exception as exc:
            self.failures += 1
            self.last_error = str(exc) or type(exc).__name__
            log.warning("durability audit failed (findings kept from the last one): %s", exc)
            return False
        now = self._clock()
        self.record(facts, now)
        self.writes.forget_older_than(now)
        return True

    async def run(self) -> None:
        """Refresh now and every ``refresh_interval`` seconds, until cancelled."""
        while True:
            await self.refresh_once()
            await asyncio.sleep(self.refresh_interval)

    async def stop(self) -> None:
        """Disconnect the reader."""
        if self._is_connected:
            self._is_connected = False
            await self._reader.close()
