"""The webhook sink: gap changes (and duplicate records) POSTed as signed JSON.

:meth:`WebhookSink.handle` appends the chosen kinds of changes to a bounded queue (the
oldest is dropped and counted when it is full) and returns; a sender task posts them in
batches of up to :data:`BATCH` with retries and backoff. A batch that still fails after
the retries is dropped and counted (``gapwatch_alert_dropped_total{sink="webhook"}``):
the gap log, not the webhook, is the durable record.

Body (docs/alerting.md has a full example)::

    {"version": 1, "delivery_id": "<uuid4, the same on every retry>", "group": ...,
     "instance": ..., "sent_at": "<RFC 3339>", "events": [<change>, ...]}

With a secret, ``X-Gapwatch-Signature: sha256=<hex HMAC-SHA256 of the raw body>``;
receivers check it with :func:`verify_signature` (or the few lines in the docs).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final

from gapwatch.alerting.changes import GapChange, changes_from_events, iso_time
from gapwatch.alerting.delivery import DeliverySettings, HttpPoster, SinkStats
from gapwatch.core.events import DuplicateRecords, Event

log = logging.getLogger(__name__)

BATCH = 100
SIGNATURE_HEADER: Final = "X-Gapwatch-Signature"
DELIVERY_HEADER: Final = "X-Gapwatch-Delivery"
DUPLICATES: Final = "duplicates"
DEFAULT_KINDS: Final = ("confirmed", "recovered", "truncated", "skipped", DUPLICATES)
ALL_KINDS: Final = (
    "opened",
    "shrunk",
    "split",
    "told",
    "healed",
    "confirmed",
    "recovered",
    "truncated",
    "unknown",
    "skipped",
    DUPLICATES,
)


def sign(body: bytes, secret: str) -> str:
    """The signature header value of ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, secret: str) -> bool:
    """Whether ``header`` is the signature of the raw ``body`` (constant-time compare)."""
    return header is not None and hmac.compare_digest(header, sign(body, secret))


_Item = tuple[float, GapChange | DuplicateRecords]


class WebhookSink:
    """Queues gap changes and posts them to one URL, signed if a secret is set."""

    name = "webhook"

    def __init__(
        self,
        *,
        url: str,
        secret: str | None,
        kinds: Sequence[str],
        group: str,
        instance: str,
        external_url: str,
        settings: DeliverySettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._kinds = frozenset(kinds)
        self._group = group
        self._instance = instance
        self.external_url = external_url
        self._clock = clock
        self.stats = SinkStats("webhook")
        self._poster = HttpPoster(url=url, settings=settings, stats=self.stats)
        self._queue: deque[_Item] = deque()
        self._limit = settings.queue_size
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def handle(self, events: Sequence[Event], now: float) -> None:
        """Queue the wanted changes of ``events``; never blocks."""
        items: list[_Item] = [
            (now, change)
            for change in changes_from_events(
                events, group=self._group, instance=self._instance, now=now
            )
            if change.kind.value in self._kinds
        ]
        if DUPLICATES in self._kinds:
            items += [(now, e) for e in events if isinstance(e, DuplicateRecords)]
        for item in items:
            if len(self._queue) >= self._limit:
                self._queue.popleft()
                self.stats.dropped += 1
            self._queue.append(item)
        self.stats.queued = len(self._queue)
        if items:
            self._wakeup.set()

    def start(self) -> None:
        """Start the sender task."""
        self._task = asyncio.create_task(self._send_forever(), name="gapwatch-webhook")

    async def stop(self) -> None:
        """Stop sending (what is queued is not sent) and close."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._poster.close()

    async def _send_forever(self) -> None:
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
            self.stats.queued = len(self._queue)
            body, headers = self.request(batch)
            if not await self._poster.post(lambda: (body, headers)):  # noqa: B023 (awaited here)
                self.stats.dropped += len(batch)
                log.error("sink webhook: dropped %d events after retries", len(batch))

    def request(self, batch: Sequence[_Item]) -> tuple[bytes, dict[str, str]]:
        """Body and headers of one delivery; retries send exactly these bytes."""
        body, delivery_id = self.encode(batch)
        headers = {"Content-Type": "application/json", DELIVERY_HEADER: delivery_id}
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, self._secret)
        return body, headers

    def encode(self, batch: Sequence[_Item]) -> tuple[bytes, str]:
        """The body of one delivery and its id."""
        delivery_id = str(uuid.uuid4())
        document = {
            "version": 1,
            "delivery_id": delivery_id,
            "group": self._group,
            "instance": self._instance,
            "sent_at": iso_time(self._clock()),
            "events": [self._event_json(at, item) for at, item in batch],
        }
        return json.dumps(document, separators=(",", ":")).encode(), delivery_id

    def _event_json(self, at: float, item: GapChange | DuplicateRecords) -> dict[str, Any]:
        if isinstance(item, GapChange):
            body = item.to_json()
            if item.gap is not None:
                body["gap_url"] = f"{self.external_url.rstrip('/')}/gaps/{item.gap.id}"
            return body
        key = item.key
        return {
            "kind": DUPLICATES,
            "group": self._group,
            "instance": self._instance,
            "at": iso_time(at),
            "at_ts": at,
            "duplicates": {
                "topic": key.topic,
                "partition": key.partition,
                "producer": key.producer,
                "epoch": key.epoch,
                "first_seq": item.first_seq,
                "last_seq": item.last_seq,
                "count": item.count,
                "offset": item.offset,
            },
        }
