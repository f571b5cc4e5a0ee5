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

Gaps on a mirrored topic (docs/mirroring.md) carry the four mirror fields of ``/gaps``, as
they were when the change was queued. A loss this sink posted while its origin was still
``pending`` is posted once more, as an ``origin`` event, when the origin is decided
(:meth:`WebhookSink.origin_decided`, subscribed to the origin book).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from gapwatch.alerting.changes import GapChange, changes_from_events, iso_time
from gapwatch.alerting.delivery import DeliverySettings, HttpPoster, SinkStats
from gapwatch.core.events import DuplicateRecords, Event
from gapwatch.core.model import Gap
from gapwatch.core.origin import Origin
from gapwatch.gaps.origins import OriginBook

log = logging.getLogger(__name__)

BATCH = 100
SIGNATURE_HEADER: Final = "X-Gapwatch-Signature"
DELIVERY_HEADER: Final = "X-Gapwatch-Delivery"
DUPLICATES: Final = "duplicates"
ORIGIN: Final = "origin"
DEFAULT_KINDS: Final = ("confirmed", "recovered", "truncated", "skipped", DUPLICATES, ORIGIN)
ALL_KINDS: Final = (
    "opened",
    "shrunk",
    "split",
    "joined",
    "absorbed",
    "told",
    "healed",
    "confirmed",
    "recovered",
    "truncated",
    "unknown",
    "skipped",
    DUPLICATES,
    ORIGIN,
)
# Losses posted with origin pending, remembered until decided (oldest forgotten first).
AWAITED_ORIGINS_LIMIT: Final = 10_000


def sign(body: bytes, secret: str) -> str:
    """The signature header value of ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, secret: str) -> bool:
    """Whether ``header`` is the signature of the raw ``body`` (constant-time compare)."""
    return header is not None and hmac.compare_digest(header, sign(body, secret))


@dataclass(frozen=True, slots=True)
class OriginDecided:
    """The origin of a loss this sink posted earlier, decided since."""

    gap: Gap


# (queued at, what, the gap's mirror fields when queued: None without an origin book)
_Item = tuple[float, GapChange | DuplicateRecords | OriginDecided, Mapping[str, Any] | None]


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
        origins: OriginBook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._origins = origins
        # gap id -> the gap as posted with origin pending (then an update is owed).
        self._awaiting_origin: OrderedDict[str, Gap] = OrderedDict()
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
            (now, change, self._mirror_fields(change.gap))
            for change in changes_from_events(
                events, group=self._group, instance=self._instance, now=now
            )
            if change.kind.value in self._kinds
        ]
        if DUPLICATES in self._kinds:
            items += [(now, e, None) for e in events if isinstance(e, DuplicateRecords)]
        for _, item, fields in items:
            if isinstance(item, GapChange) and item.gap is not None:
                self._note_pending(item.gap, fields)
        self._enqueue(items)

    def origin_decided(self, gap_id: str) -> None:
        """Queue an ``origin`` event if this sink posted ``gap_id`` while its origin was
        pending; other decisions (gaps of other instances, decided again after a restart)
        are not this sink's to announce."""
        gap = self._awaiting_origin.pop(gap_id, None)
        if gap is None or self._origins is None:
            return
        self._enqueue([(self._clock(), OriginDecided(gap), self._origins.fields_of(gap))])

    def _mirror_fields(self, gap: Gap | None) -> Mapping[str, Any] | None:
        if gap is None or self._origins is None:
            return None
        return self._origins.fields_of(gap)

    def _note_pending(self, gap: Gap, fields: Mapping[str, Any] | None) -> None:
        if ORIGIN not in self._kinds or fields is None or fields["origin"] != Origin.PENDING.value:
            return
        self._awaiting_origin[gap.id] = gap
        self._awaiting_origin.move_to_end(gap.id)
        while len(self._awaiting_origin) > AWAITED_ORIGINS_LIMIT:
            self._awaiting_origin.popitem(last=False)

    def _enqueue(self, items: Sequence[_Item]) -> None:
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
            "events": [self._event_json(at, item, fields) for at, item, fields in batch],
        }
        return json.dumps(document, separators=(",", ":")).encode(), delivery_id

    def _event_json(
        self,
        at: float,
        item: GapChange | DuplicateRecords | OriginDecided,
        fields: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        if isinstance(item, GapChange):
            body = item.to_json()
            if item.gap is not None:
                if fields is not None:
                    body["gap"].update(fields)
                body["gap_url"] = self._gap_url(item.gap)
            return body
        if isinstance(item, OriginDecided):
            return {
                "kind": ORIGIN,
                "group": self._group,
                "instance": self._instance,
                "at": iso_time(at),
                "at_ts": at,
                "gap": {**item.gap.to_json(), "instance": self._instance, **(fields or {})},
                "gap_url": self._gap_url(item.gap),
            }
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

    def _gap_url(self, gap: Gap) -> str:
        return f"{self.external_url.rstrip('/')}/gaps/{gap.id}"
