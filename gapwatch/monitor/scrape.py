"""The body of ``GET /metrics``: gapwatch's families rendered lean, then the registry's rest.

A scrape must not stall consumption, which runs on the same event loop. So:

1. the values are read on the loop in one pass (:meth:`MonitorCollector.read`: a tuple per
   series, about 1 ms for 5,000 series), so they are consistent with each other: no record
   is processed meanwhile. It is a step of its own (the loop runs other work first);
2. the text is rendered on the loop one family at a time (pieces of at most 500 lines,
   :func:`~gapwatch.monitor.exposition.render_chunks`), yielding to the loop between
   pieces, and lines whose value did not change since the last scrape are reused from a
   :class:`~gapwatch.monitor.exposition.LineCache`. Not in a thread: rendering is
   GIL-bound, and a thread holding the GIL makes the loop wait up to the interpreter's
   switch interval (5 ms) at every hand-over;
3. the rest of the registry (process, GC, platform collectors, anything an embedding
   application registered) is rendered by ``generate_latest`` in a worker thread, with
   the monitor's own collector muted there so nothing appears twice. That part is small,
   and it may hold third-party collectors that block.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, generate_latest

from gapwatch.monitor.exposition import LineCache, render_chunks
from gapwatch.monitor.metrics import MonitorCollector, rendered_separately


class MetricsPage:
    """Renders ``/metrics`` for one monitor (``collector``) and its ``registry``."""

    def __init__(
        self, *, registry: CollectorRegistry, collector: MonitorCollector | None = None
    ) -> None:
        self._registry = registry
        self._collector = collector
        self._lines = LineCache()

    async def render(self) -> bytes:
        """The whole exposition text (Prometheus text format 0.0.4), UTF-8."""
        pieces: list[str] = []
        if self._collector is not None:
            await asyncio.sleep(0)  # the request's parsing and routing was one step already
            for piece in render_chunks(self._collector.read(), self._lines):
                pieces.append(piece)
                await asyncio.sleep(0)
        own = "".join(pieces).encode("utf-8")
        return own + await asyncio.to_thread(self._render_registry)

    def _render_registry(self) -> bytes:
        if self._collector is None:
            return generate_latest(self._registry)
        with rendered_separately(self._collector):
            return generate_latest(self._registry)
