"""Identity of a stamping producer: who it is (producer id) and which life (epoch).

:func:`resolve_identity` is the one place the producer side checks a given id and epoch:
it applies the defaults below and the wire format's validators, and reports a bad value
as a :class:`~gapwatch.producer.ProducerConfigError` naming the field.

The wire format asks for a producer id that is stable for one logical producer instance
and an epoch that is strictly greater on every restart. The defaults below satisfy that
without configuration:

- ``producer_id`` is ``"<hostname>/<pid>"``: distinct for two processes on one host and
  readable in an alert. It changes when the process restarts, so an operator who wants
  the monitor to connect the lives of one service (and detect head loss across a
  restart) should pass a stable id instead, such as the pod or service instance name.
- ``epoch`` is the wall-clock start time in milliseconds, made strictly greater than the
  previous epoch handed out in this process, so two producers created in the same
  millisecond with the same id still get different epochs.
"""

from __future__ import annotations

import os
import socket
import threading
import time

from gapwatch.core.wire import MAX_PRODUCER_ID_CHARS, validate_epoch, validate_producer_id
from gapwatch.errors import MalformedStampError
from gapwatch.producer.config import ProducerConfigError

# Process-wide on purpose: epochs must increase across every producer this process
# creates, whichever code creates them.
_epoch_lock = threading.Lock()
_last_epoch = 0


def default_producer_id() -> str:
    """``"<hostname>/<pid>"``, trimmed to the wire format's limit and made printable."""
    host = "".join(ch if ch.isprintable() else "?" for ch in socket.gethostname()) or "host"
    suffix = f"/{os.getpid()}"
    return validate_producer_id(host[: MAX_PRODUCER_ID_CHARS - len(suffix)] + suffix)


def new_epoch(now_ms: int | None = None) -> int:
    """The current time in ms, strictly greater than any epoch this process handed out."""
    global _last_epoch
    candidate = int(time.time() * 1000) if now_ms is None else now_ms
    with _epoch_lock:
        _last_epoch = max(candidate, _last_epoch + 1)
        return _last_epoch


def resolve_identity(producer_id: str | None, epoch: int | None) -> tuple[str, int]:
    """(producer id, epoch): the given ones, or the defaults for ``None``.

    Raises :class:`ProducerConfigError` (field ``producer_id`` or ``epoch``) if a value
    could not be written as a stamp.
    """
    try:
        producer_id = validate_producer_id(
            default_producer_id() if producer_id is None else producer_id
        )
    except MalformedStampError as exc:
        raise ProducerConfigError("producer_id", exc.reason) from None
    try:
        epoch = validate_epoch(new_epoch() if epoch is None else epoch)
    except MalformedStampError as exc:
        raise ProducerConfigError("epoch", exc.reason) from None
    return producer_id, epoch
