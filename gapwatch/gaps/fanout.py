"""Fan-out of tracker events to every subscriber that wants them (monitor or verifier).

The consumer loop hands each batch's events to :class:`EventFanout` once; subscribers
(the gap store, the gap log, the fleet view, the alert sinks) receive the same
tuple in order. A subscriber must not block: anything slow (network sinks) keeps its own
queue and task. A subscriber that raises is logged and counted and the others still get
the events, so one broken sink never stalls or breaks consumption.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from gapwatch.core.events import Event

log = logging.getLogger(__name__)


class EventSubscriber(Protocol):
    """Receives tracker events synchronously, in the order they happened."""

    @property
    def name(self) -> str:
        """A short stable name, used in logs and in the failure counter."""
        ...

    def handle(self, events: Sequence[Event], now: float) -> None:
        """Take ``events`` (never empty); must return quickly and not block the loop."""
        ...


class EventFanout:
    """Delivers each batch of events to every subscriber, isolating their failures."""

    def __init__(self) -> None:
        self._subscribers: list[EventSubscriber] = []
        self.failures: dict[str, int] = {}
        self.published = 0

    def subscribe(self, subscriber: EventSubscriber) -> None:
        """Add ``subscriber``; it receives every event published from now on."""
        self._subscribers.append(subscriber)
        self.failures.setdefault(subscriber.name, 0)

    def publish(self, events: Sequence[Event], now: float) -> None:
        """Hand ``events`` to every subscriber; an empty batch is not delivered."""
        if not events:
            return
        self.published += len(events)
        for subscriber in self._subscribers:
            try:
                subscriber.handle(events, now)
            except Exception:
                # A subscriber's bug must not stop the consumer loop or starve the others.
                self.failures[subscriber.name] += 1
                log.exception("event subscriber %s failed", subscriber.name)
