"""A real HTTP receiver on 127.0.0.1 that records what it is sent, for sink tests.

:func:`run_receiver` serves in a thread (``http.server``), so it keeps answering while the
test's event loop is busy, and records every request's path, headers and raw body. Its
``mode`` decides the answer: ``"ok"`` (200), ``"fail"`` (500) or ``"hang"`` (reads the
request and never answers until the receiver stops). No mocks: the sinks speak real HTTP
to it over loopback.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Mode = Literal["ok", "fail", "hang"]


@dataclass(frozen=True, slots=True)
class Received:
    """One request as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class Receiver:
    """A running receiver: its URL, what it got, and how it answers (changeable)."""

    url: str
    mode: Mode = "ok"
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def received(self) -> list[Received]:
        """A copy of every request so far."""
        with self.lock:
            return list(self.requests)


class _Handler(BaseHTTPRequestHandler):
    receiver: Receiver
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        receiver = self.receiver
        with receiver.lock:
            receiver.requests.append(
                Received(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time()
                )
            )
            mode = receiver.mode
        if mode == "hang":
            receiver.stopping.wait(120.0)
            return
        status = 200 if mode == "ok" else 500
        answer = b"{}" if status == 200 else b"boom"
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@contextmanager
def run_receiver(mode: Mode = "ok") -> Iterator[Receiver]:
    """Serve on a free loopback port until the ``with`` block ends."""
    handler = type("Handler", (_Handler,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}", mode=mode)
    handler.receiver = receiver  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield receiver
    finally:
        receiver.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main() -> None:
    """``python -m gapwatch.testing.receiver ok|fail|hang``: serve in this process, print the
    URL on stdout, until stdin closes (benchmarks keep the receiver out of their own
    process, so its threads do not compete for the GIL with the monitor)."""
    import sys

    mode = sys.argv[1] if len(sys.argv) > 1 else "ok"
    if mode not in ("ok", "fail", "hang"):
        raise SystemExit(f"mode must be ok, fail or hang, not {mode!r}")
    with run_receiver(mode) as receiver:  # type: ignore[arg-type]
        print(receiver.url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
