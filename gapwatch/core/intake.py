"""One record into a tracker: read its stamp, then observe it, or count it unstamped or
malformed.

The monitor's record path, ``gapwatch audit`` and the verifier's ledger all take records
this way; :func:`observe_record` is the one place the sequence is written, so the three
cannot drift apart (rule R15 of the tracker: unstamped and malformed records are only
counted). The monitor's measured fast path (:mod:`gapwatch.monitor.ingest.recordpath`)
inlines the common well-formed record and hands every other one to this function.

Pure: no I/O, no clock; ``now`` is the caller's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from gapwatch.core.events import NO_EVENTS, Event
from gapwatch.core.wire import Stamp, parse_stamp
from gapwatch.errors import MalformedStampError

Headers = Iterable[tuple[str, bytes | None]] | None
# Reads a record's stamp from its headers: None if unstamped, MalformedStampError if damaged.
# Takes Any: parse_stamp reads any iterable of headers, StampReader.read a sequence (what
# aiokafka records hold).
StampReading = Callable[[Any], Stamp | None]


class RecordObserver(Protocol):
    """The tracker methods a record ends in."""

    def observe(self, offset: int, timestamp_ms: int, stamp: Stamp, now: float) -> Sequence[Event]:
        """One stamped record."""
        ...

    def observe_unstamped(self) -> None:
        """One record without gapwatch headers."""
        ...

    def observe_malformed(self, reason: str) -> None:
        """One record with damaged gapwatch headers."""
        ...


def observe_record(
    tracker: RecordObserver,
    *,
    offset: int,
    timestamp_ms: int,
    headers: Headers,
    now: float,
    read_stamp: StampReading = parse_stamp,
    on_malformed: Callable[[int, str], None] | None = None,
) -> Sequence[Event]:
    """Feed the record at ``offset`` to ``tracker``; the events it caused.

    ``read_stamp`` is :func:`~gapwatch.core.wire.parse_stamp` unless the caller keeps a
    :class:`~gapwatch.core.stamps.StampReader`, whose results are the same.
    ``on_malformed(offset, reason)`` is called after a damaged stamp is counted, so that an
    adapter can log which record it was (the core itself never logs).
    """
    try:
        stamp = read_stamp(headers)
    except MalformedStampError as exc:
        tracker.observe_malformed(exc.reason)
        if on_malformed is not None:
            on_malformed(offset, exc.reason)
        return NO_EVENTS
    if stamp is None:
        tracker.observe_unstamped()
        return NO_EVENTS
    return tracker.observe(offset, timestamp_ms, stamp, now)
