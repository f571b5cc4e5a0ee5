"""``GET /events``: live gap changes for Server-Sent Events clients, with a replay buffer.

Every change read from the gap log is published here with its gap log offset as the
event id, so ids are the same on every instance and survive restarts: a client can
reconnect to any instance with ``Last-Event-ID``. The hub keeps the last ``capacity``
changes. A client resuming from id ``n``:

* gets every buffered change with an id above ``n`` (ids skipped by compaction were
  superseded by a later change of the same gap, which it does get);
* if changes above ``n`` were already evicted from the buffer (``n`` is below the
  buffer's floor), first gets a ``reset`` event naming the oldest id still buffered:
  something was missed, so re-read ``GET /gaps`` for the current state;
* without ``Last-Event-ID``, only changes from now on.

Each client has a bounded queue; a client too slow to drain it is disconnected (it
reconnects with its last id and resumes from the buffer). :meth:`EventHub.close` ends
every stream, so uvicorn's graceful shutdown is not held up by open connections.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field

from gapwatch.alerting.changes import GapChange

CLIENT_QUEUE = 1000


@dataclass(slots=True, eq=False)  # identity: clients live in a set
class Subscription:
    """One connected client: what to replay first, then its live queue."""

    replay: list[tuple[int, GapChange]]
    reset_to: int | None  # set if changes after the client's id were already evicted
    queue: asyncio.Queue[tuple[int, GapChange] | None] = field(
        default_factory=lambda: asyncio.Queue(CLIENT_QUEUE)
    )
    is_closed: bool = False


class EventHub:
    """Fan-out of gap log changes to SSE clients, with a bounded replay buffer."""

    def __init__(self, *, capacity: int) -> None:
        self._buffer: deque[tuple[int, GapChange]] = deque(maxlen=capacity)
        self._clients: set[Subscription] = set()
        self._floor = -1  # every change with an id <= floor is no longer buffered
        self.is_closed = False
        self.published = 0
        self.disconnected_slow = 0

    @property
    def clients(self) -> int:
        """How many clients are connected."""
        return len(self._clients)

    def start_at(self, first_offset: int) -> None:
        """The gap log starts at ``first_offset``: anything older is gone for good."""
        self._floor = max(self._floor, first_offset - 1)

    def publish(self, event_id: int, change: GapChange) -> None:
        """Buffer one change and hand it to every client (never blocks)."""
        if len(self._buffer) == self._buffer.maxlen:
            self._floor = self._buffer[0][0]
        self._buffer.append((event_id, change))
        self.published += 1
        for client in list(self._clients):
            try:
                client.queue.put_nowait((event_id, change))
            except asyncio.QueueFull:
                # Disconnect rather than drop silently: the client resumes from the buffer.
                self.disconnected_slow += 1
                self._end(client)

    def subscribe(self, last_id: int | None) -> Subscription:
        """A new client, resuming after ``last_id`` (``None``: from now on)."""
        if last_id is None:
            sub = Subscription(replay=[], reset_to=None)
        else:
            replay = [(i, c) for i, c in self._buffer if i > last_id]
            reset_to = None
            if last_id < self._floor:
                reset_to = replay[0][0] if replay else self._floor + 1
            sub = Subscription(replay=replay, reset_to=reset_to)
        if self.is_closed:
            sub.is_closed = True
            sub.queue.put_nowait(None)
        else:
            self._clients.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """The client went away."""
        self._clients.discard(sub)

    def close(self) -> None:
        """End every stream now and refuse new ones (shutdown)."""
        self.is_closed = True
        for client in list(self._clients):
            self._end(client)

    def _end(self, client: Subscription) -> None:
        self._clients.discard(client)
        client.is_closed = True
        # Make room for the end marker: the client is leaving anyway.
        while client.queue.full():
            client.queue.get_nowait()
        client.queue.put_nowait(None)


def format_change(event_id: int, change: GapChange) -> str:
    """One SSE event: ``id:`` the gap log offset, ``data:`` the change as JSON."""
    return f"id: {event_id}\ndata: {json.dumps(change.to_json(), separators=(',', ':'))}\n\n"


def format_reset(oldest_id: int) -> str:
    """The event telling a resuming client that it missed changes."""
    data = json.dumps({"reason": "missed events; re-read /gaps", "oldest_id": oldest_id})
    return f"event: reset\ndata: {data}\n\n"


KEEPALIVE = ": keep-alive\n\n"
