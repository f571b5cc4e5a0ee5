"""Default identity of a stamping producer: who it is (producer id) and which life (epoch).

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

from gapwatch.core.wire import MAX_PRODUCER_ID_CHARS, validate_producer_id

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
