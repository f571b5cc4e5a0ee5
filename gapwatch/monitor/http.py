"""The monitor's HTTP API: /metrics, /gaps, /gaps/{id}, /skipped, /streams, health, /docs.

:func:`create_app` receives everything it serves (gap store, a view of the running
monitor, the Prometheus registry, the optional token); it owns no state of its own, so
tests drive it with httpx's ASGI transport and a real :class:`GapStore`.

``/metrics`` is rendered by :class:`~gapwatch.monitor.scrape.MetricsPage`: gapwatch's own
families with a lean renderer in small pieces on the loop, the rest of the registry with
``generate_latest`` in a worker thread, so a scrape of thousands of series does not hold
the event loop that also runs the consumer. With a token configured, ``/gaps``,
``/skipped`` and ``/streams`` require ``Authorization: Bearer <token>``; ``/metrics``,
``/healthz`` and ``/readyz`` stay open so Prometheus and orchestrators need no secret
(they reveal counts, not gap details).
"""

# No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations
# at runtime, and the token dependency is a closure it could not resolve from a string.

import secrets
from datetime import datetime
from typing import Annotated, Any, Protocol

from fastapi import Depends, FastAPI, HTTPException, Query, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry

from gapwatch import __version__
from gapwatch.core.model import GapState
from gapwatch.monitor.api_models import (
    GapModel,
    GapPageModel,
    SkippedPageModel,
    StatusModel,
    StreamsModel,
)
from gapwatch.monitor.exposition import CONTENT_TYPE
from gapwatch.monitor.gapstore import BadCursorError, GapQuery, GapStore
from gapwatch.monitor.metrics import MonitorCollector
from gapwatch.monitor.scrape import MetricsPage

MAX_LIMIT = 5000
DEFAULT_LIMIT = 100


class MonitorView(Protocol):
    """What the API needs to know about the running monitor."""

    def streams_json(self) -> dict[str, Any]:
        """The body of ``GET /streams`` (see :class:`StreamsModel`)."""
        ...

    def readiness(self) -> tuple[bool, str]:
        """Whether every assigned partition is restored and consuming, and why not."""
        ...

    def health(self) -> tuple[bool, str]:
        """Whether the process is working (consumer task alive), and why not."""
        ...


def _parse_since(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(422, "since must be seconds since the epoch or RFC 3339") from None
    if moment.tzinfo is None:
        raise HTTPException(422, "since needs a time zone (e.g. Z)")
    return moment.timestamp()


def _parse_states(raw: list[str] | None) -> frozenset[GapState] | None:
    if not raw:
        return None
    names = {part.strip() for item in raw for part in item.split(",") if part.strip()}
    try:
        return frozenset(GapState(name) for name in names)
    except ValueError:
        allowed = ", ".join(state.value for state in GapState)
        raise HTTPException(422, f"state must be one of {allowed}") from None


def create_app(
    *,
    store: GapStore,
    monitor: MonitorView,
    registry: CollectorRegistry,
    collector: MonitorCollector | None = None,
    token: str | None = None,
) -> FastAPI:
    """The ASGI application serving ``store`` and ``monitor`` (one per process).

    ``/metrics`` shows ``collector``'s families (rendered lean) and everything else in
    ``registry``; the collector may also be registered there (it is then not repeated).
    """
    app = FastAPI(
        title="gapwatch monitor",
        version=__version__,
        description="Lost, duplicated and reordered Kafka records, from producer stamps.",
    )
    bearer = HTTPBearer(auto_error=False, description="the monitor's http_token")

    async def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if token is None:
            return
        # compare_digest: the comparison time must not reveal how much of a guess matched.
        given = credentials.credentials if credentials is not None else ""
        if not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"}
            )

    guarded = [Depends(require_token)]
    page = MetricsPage(registry=registry, collector=collector)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(await page.render(), media_type=CONTENT_TYPE)

    @app.get("/gaps", response_model=GapPageModel, dependencies=guarded)
    async def list_gaps(
        topic: str | None = None,
        partition: Annotated[int | None, Query(ge=0)] = None,
        producer: str | None = None,
        state: Annotated[list[str] | None, Query(description="repeat or comma-separate")] = None,
        since: Annotated[str | None, Query(description="epoch seconds or RFC 3339")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Response:
        """Gaps known to this instance, newest first, with a cursor for the next page."""
        query = GapQuery(
            topic=topic,
            partition=partition,
            producer=producer,
            states=_parse_states(state),
            since=_parse_since(since),
        )
        try:
            page = store.query(query, limit=limit, cursor=cursor)
        except BadCursorError as exc:
            raise HTTPException(422, str(exc)) from None
        return JSONResponse(
            {"gaps": [gap.to_json() for gap in page.gaps], "next_cursor": page.next_cursor}
        )

    @app.get("/gaps/{gap_id}", response_model=GapModel, dependencies=guarded)
    async def get_gap(gap_id: str) -> Response:
        """One gap by id (404 if unknown or expired)."""
        gap = store.get(gap_id)
        if gap is None:
            raise HTTPException(404, f"no gap {gap_id!r} on this instance")
        return JSONResponse(gap.to_json())

    @app.get("/skipped", response_model=SkippedPageModel, dependencies=guarded)
    async def list_skipped() -> Response:
        """Offset ranges retention deleted before this instance read them (not loss)."""
        items = [
            {
                "topic": s.topic,
                "partition": s.partition,
                "first_offset": s.first_offset,
                "last_offset": s.last_offset,
                "count": s.count,
                "at": s.at,
            }
            for s in reversed(store.skipped)
        ]
        return JSONResponse({"skipped": items})

    @app.get("/streams", response_model=StreamsModel, dependencies=guarded)
    async def streams() -> Response:
        """The partitions this instance owns and the producer streams on each."""
        return JSONResponse(monitor.streams_json())

    @app.get("/healthz", response_model=StatusModel)
    async def healthz() -> Response:
        """200 while the process works; 503 if the consumer has died."""
        is_healthy, detail = monitor.health()
        body = {"status": "ok" if is_healthy else "failing", "detail": detail}
        return JSONResponse(body, status_code=200 if is_healthy else 503)

    @app.get("/readyz", response_model=StatusModel)
    async def readyz() -> Response:
        """200 once every assigned partition's checkpoint is restored; else 503."""
        is_ready, detail = monitor.readiness()
        body = {"status": "ready" if is_ready else "not ready", "detail": detail}
        return JSONResponse(body, status_code=200 if is_ready else 503)

    return app
