"""One broker's incremental fetch session (KIP-227) as the client keeps it: what to send.

A consumer that fetches thousands of partitions from one broker need not name all of them
in every Fetch request, nor read all of them in every response. With a fetch session the
broker remembers the partitions and their fetch offsets; each request names only what
changed and each response holds only partitions that have records or changed metadata.

Rules, in the order a request's life applies them (Kafka's ``FetchRequest`` v7+):

S1. Without a session a request is *full*: epoch 0, every wanted partition named, nothing
    forgotten, and as session id the id of the session it replaces (0 if none), which the
    broker closes. The broker's answer carries the new session's id (0 if it made none:
    the next request is full again).
S2. In a session a request is *incremental*: the session's id and next epoch (1, 2, ...,
    wrapping from 2**31-1 to 1); it names each wanted partition that is new or whose fetch
    target (fetch offset, maximum bytes) changed, and forgets each partition the broker
    holds that is no longer wanted.
S3. Only one request per session is in flight, so a successful answer means the broker
    holds exactly the request's wanted set (:meth:`FetchSession.commit`).
S4. A failed request, an answer lost to cancellation, or a top-level error (70
    FETCH_SESSION_ID_NOT_FOUND, 71 INVALID_FETCH_SESSION_EPOCH or any other) leaves the
    broker's view unknown: the session is reset and the next request is full
    (:meth:`FetchSession.reset`).
S5. A partition's high watermark is *confirmed* by a successful answer if the client holds
    the value the broker last sent for it in this session (:meth:`note_included` after
    applying it; :meth:`note_unconfirmed` after an error answer for it, which carries no
    watermark). The broker omits a partition from an incremental answer only if it has no
    records, no error, and the same high watermark and log start offset as the broker last
    sent, so such a partition's watermark was still true when that answer came
    (:meth:`confirmed_at`). A partition the session forgets, or every partition on a reset,
    is unconfirmed until an answer includes it again.

No I/O and no clock: times come in as arguments. Keys are whatever identifies a partition
to the caller (hashable).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)

NO_SESSION: Final = 0
INITIAL_EPOCH: Final = 0
_MAX_EPOCH: Final = 2**31 - 1
# Top-level error codes that say the broker no longer knows the session as the client does.
FETCH_SESSION_ID_NOT_FOUND: Final = 70
INVALID_FETCH_SESSION_EPOCH: Final = 71

# What a request asks of one partition: (fetch offset, maximum bytes).
FetchTarget = tuple[int, int]


@dataclass(frozen=True, slots=True)
class FetchPlan(Generic[Key]):
    """One request to send: the session fields, the partitions to name and to forget."""

    session_id: int
    epoch: int
    send: tuple[tuple[Key, FetchTarget], ...]
    forget: tuple[Key, ...]
    # The wanted set the broker will hold once the request succeeds (S3).
    wanted: Mapping[Key, FetchTarget]

    @property
    def is_full(self) -> bool:
        """Whether this request names every wanted partition (S1)."""
        return self.epoch == INITIAL_EPOCH


class FetchSession(Generic[Key]):
    """The client's side of one broker's fetch session (rules S1-S5)."""

    __slots__ = (
        "_closing_id",
        "_confirmed",
        "_held",
        "answered_at_ms",
        "epoch",
        "resets",
        "session_id",
    )

    def __init__(self) -> None:
        self.session_id = NO_SESSION
        self._closing_id = NO_SESSION  # the session the next full request replaces
        self.epoch = INITIAL_EPOCH
        self._held: Mapping[Key, FetchTarget] = {}  # the broker's view after the last answer
        self._confirmed: set[Key] = set()  # S5
        self.answered_at_ms: int | None = None
        self.resets = 0  # S4 resets of a session that existed

    def plan(self, wanted: Mapping[Key, FetchTarget]) -> FetchPlan[Key]:
        """The next request for ``wanted`` (S1, S2). Changes nothing until :meth:`commit`."""
        if self.session_id == NO_SESSION:
            return FetchPlan(self._closing_id, INITIAL_EPOCH, tuple(wanted.items()), (), wanted)
        held = self._held
        send = tuple(item for item in wanted.items() if held.get(item[0]) != item[1])
        forget = tuple(key for key in held if key not in wanted)
        return FetchPlan(self.session_id, self.epoch, send, forget, wanted)

    def commit(self, plan: FetchPlan[Key], *, session_id: int, now_ms: int) -> None:
        """The broker answered ``plan`` without a top-level error, naming ``session_id`` (S3)."""
        if plan.is_full:
            # Everything named was answered; the set starts over.
            self._confirmed.clear()
            self._closing_id = NO_SESSION
        else:
            for key in plan.forget:
                self._confirmed.discard(key)
        if session_id == NO_SESSION or (not plan.is_full and session_id != plan.session_id):
            # No session made (S1), or the broker closed this one: start over, full.
            self._forget_session()
        else:
            self.session_id = session_id
            self.epoch = 1 if plan.epoch >= _MAX_EPOCH else plan.epoch + 1
            self._held = plan.wanted
        self.answered_at_ms = now_ms

    def reset(self, *, failed: bool = True) -> None:
        """The broker's view is unknown (S4): the next request is full and closes the
        session. ``failed``: count it in :attr:`resets` (not for a new assignment)."""
        if self.session_id != NO_SESSION:
            self._closing_id = self.session_id
            if failed:
                self.resets += 1
        self._forget_session()

    def _forget_session(self) -> None:
        self.session_id = NO_SESSION
        self.epoch = INITIAL_EPOCH
        self._held = {}
        self._confirmed.clear()
        self.answered_at_ms = None

    def note_included(self, key: Key) -> None:
        """The answer being applied included ``key`` and its watermark was applied (S5)."""
        self._confirmed.add(key)

    def note_unconfirmed(self, key: Key) -> None:
        """The answer being applied included ``key`` with an error, without a watermark."""
        self._confirmed.discard(key)

    def confirmed_at(self, key: Key) -> int | None:
        """When ``key``'s watermark as the client holds it was last confirmed (S5), or
        ``None``."""
        if key in self._confirmed:
            return self.answered_at_ms
        return None

    def holds(self, key: Key) -> bool:
        """Whether the broker's view (after the last answer) includes ``key``."""
        return key in self._held

    @property
    def size(self) -> int:
        """How many partitions the broker's view holds."""
        return len(self._held)
