"""The Alertmanager sink: posts the alert book's alerts to ``POST /api/v2/alerts``.

An event subscriber of the owning instance: :meth:`AlertmanagerSink.handle` only updates
the pure :class:`~gapwatch.alerting.alertbook.AlertBook` (no I/O, microseconds) and wakes
the poster tasks, one per Alertmanager URL (send to every member of an Alertmanager
cluster, as Prometheus does; each URL is its own sink in the metrics). A poster posts the
book's whole current list when it changed (after a short pause that gathers a burst into
one request) and every ``repost_interval`` seconds, as Alertmanager expects of clients.
Its queue is the book itself, bounded by storm control: a slow or dead Alertmanager
delays the next post, never the consumer, and the next successful post carries the
newest state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from gapwatch.alerting.alertbook import AlertBook
from gapwatch.alerting.delivery import DeliverySettings, HttpPoster, SinkStats
from gapwatch.core.events import Event
from gapwatch.core.model import Gap

log = logging.getLogger(__name__)

GATHER_DELAY = 0.2  # seconds a change waits for more of a burst before it is posted
API_PATH = "/api/v2/alerts"


def sink_names(urls: Sequence[str]) -> list[str]:
    """Metric label of each Alertmanager URL's sink: ``alertmanager``, or numbered."""
    if len(urls) == 1:
        return ["alertmanager"]
    return [f"alertmanager-{i}" for i in range(1, len(urls) + 1)]


class AlertmanagerSink:
    """Keeps the alert book and posts it to one or more Alertmanagers."""

    name = "alertmanager"

    def __init__(
        self,
        *,
        urls: Sequence[str],
        book: AlertBook,
        settings: DeliverySettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.book = book
        self._clock = clock
        self.stats = [SinkStats(name) for name in sink_names(urls)]
        self._posters = [
            HttpPoster(url=url.rstrip("/") + API_PATH, settings=settings, stats=stats)
            for url, stats in zip(urls, self.stats, strict=True)
        ]
        self._wakeups = [asyncio.Event() for _ in urls]
        self._tasks: list[asyncio.Task[None]] = []

    def handle(self, events: Sequence[Event], now: float) -> None:
        """Update the book; wake the posters if an alert started or resolved."""
        before = self.book.version
        self.book.apply(events, now)
        if self.book.version != before:
            self._wake()

    def adopt(self, gaps: Iterable[Gap], now: float) -> None:
        """Lost gaps of a partition this instance took over (see AlertBook.adopt)."""
        before = self.book.version
        self.book.adopt(gaps, now)
        if self.book.version != before:
            self._wake()

    def origin_decided(self, gap_id: str) -> None:
        """Post again at once if ``gap_id`` has an alert, now carrying its origin."""
        before = self.book.version
        self.book.origin_decided(gap_id)
        if self.book.version != before:
            self._wake()

    def _wake(self) -> None:
        for wakeup in self._wakeups:
            wakeup.set()

    def start(self) -> None:
        """Start one poster task per URL."""
        for i, poster in enumerate(self._posters):
            task = self._post_forever(poster, self.stats[i], self._wakeups[i])
            self._tasks.append(asyncio.create_task(task, name=f"gapwatch-{self.stats[i].name}"))

    async def stop(self) -> None:
        """Stop posting (alerts stay in Alertmanager until their endsAt) and close."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for poster in self._posters:
            await poster.close()

    def _body(self) -> tuple[bytes, dict[str, str]]:
        now = self._clock()
        self.book.advance(now)
        alerts = [alert.to_json() for alert in self.book.current(now)]
        return json.dumps(alerts).encode(), {"Content-Type": "application/json"}

    async def _post_forever(
        self, poster: HttpPoster, stats: SinkStats, wakeup: asyncio.Event
    ) -> None:
        repost = self.book.policy.repost_interval
        posted_version = -1
        last_post = float("-inf")
        while True:
            now = self._clock()
            self.book.advance(now)
            stats.queued = self.book.firing_count()
            if self.book.version != posted_version or now >= last_post + repost:
                version = self.book.version
                if not await poster.post(self._body):
                    stats.dropped += 1
                    log.error("sink %s: giving up this round; re-posting later", stats.name)
                # Tried either way: the next round comes with the next change or re-post,
                # not at once (a dead Alertmanager must not keep the sink busy).
                posted_version = version
                last_post = self._clock()
                continue
            deadline = last_post + repost
            expiry = self.book.next_deadline()
            if expiry is not None:
                deadline = min(deadline, expiry)
            wakeup.clear()
            try:
                async with asyncio.timeout(max(0.05, deadline - now)):
                    await wakeup.wait()
                await asyncio.sleep(GATHER_DELAY)
            except TimeoutError:
                pass
