"""HTTP delivery shared by the sinks: one POST with a hard timeout, retried with backoff.

Each sink owns one :class:`HttpPoster` (its own connection pool) and one :class:`SinkStats`
(read by :mod:`gapwatch.alerting.metrics` at scrape time). A delivery is retried up to
``max_retries`` times with exponential backoff; every failed attempt is counted and
logged, and the caller decides what a final failure means (the Alertmanager sink re-posts
its whole state next round; the webhook sink counts the batch as dropped). Nothing here
raises into the caller's loop except cancellation.

The client is httpx (a runtime dependency for this): TLS, proxies from the environment
and per-phase timeouts, all of which a hand-written client would have to redo; aiohttp is
not installed (aiokafka does not depend on it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from gapwatch.alerting.retry import Backoff
from gapwatch.version import __version__

log = logging.getLogger(__name__)

USER_AGENT = f"gapwatch/{__version__}"


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """Timeout and retry policy of one sink."""

    timeout: float = 5.0
    max_retries: int = 5
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    queue_size: int = 10_000


@dataclass(slots=True)
class SinkStats:
    """Counters of one sink, exposed as ``gapwatch_alert_*{sink}``."""

    name: str
    deliveries: int = 0  # successful POSTs
    failures: int = 0  # failed attempts (each retry counts)
    dropped: int = 0  # items given up on (queue overflow or retries exhausted)
    queued: int = 0


class HttpPoster:
    """POSTs bodies to one URL with a hard per-attempt timeout and retries."""

    def __init__(
        self,
        *,
        url: str,
        settings: DeliverySettings,
        stats: SinkStats,
    ) -> None:
        self._url = url
        self._settings = settings
        self._stats = stats
        self._client = httpx.AsyncClient(
            timeout=settings.timeout, headers={"User-Agent": USER_AGENT}
        )

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def post_once(self, body: bytes, headers: dict[str, str]) -> bool:
        """One attempt; True on a 2xx answer. Failures are counted and logged."""
        try:
            # httpx's timeout bounds each phase; this bounds the whole attempt, so a server
            # that trickles its answer byte by byte cannot hold the sink for longer.
            async with asyncio.timeout(self._settings.timeout):
                response = await self._client.post(self._url, content=body, headers=headers)
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            self._stats.failures += 1
            log.warning("sink %s: POST %s failed: %r", self._stats.name, self._url, exc)
            return False
        if response.is_success:
            self._stats.deliveries += 1
            return True
        self._stats.failures += 1
        log.warning(
            "sink %s: POST %s answered %d: %s",
            self._stats.name,
            self._url,
            response.status_code,
            response.text[:200],
        )
        return False

    async def post(self, make_body: Callable[[], tuple[bytes, dict[str, str]]]) -> bool:
        """Deliver with retries; ``make_body`` is called per attempt (fresh state)."""
        backoff = Backoff(self._settings.backoff_initial, self._settings.backoff_max)
        for attempt in range(self._settings.max_retries + 1):
            body, headers = make_body()
            if await self.post_once(body, headers):
                return True
            if attempt < self._settings.max_retries:
                await asyncio.sleep(backoff.next_delay())
        return False
