"""The monitor's HTTP API: /metrics, /gaps, /gaps/{id}, /skipped, /streams, /events, health.

:func:`create_app` receives everything it serves (gap store, a view of the running
monitor, the Prometheus registry, the optional token); it owns no state of its own, so
tests drive it with httpx's ASGI transport and a real :class:`GapStore`.

``/metrics`` is rendered by :class:`~gapwatch.monitor.metrics.exposition.MetricsPage`:
gapwatch's own families with a lean renderer in small pieces on the loop, the rest of the
registry with ``generate_latest`` in a worker thread, so a scrape of thousands of series
does not hold the event loop that also runs the consumer. With a token configured, ``/gaps``,
``/skipped`` and ``/streams`` require ``Authorization: Bearer <token>``; ``/metrics``,
``/healthz`` and ``/readyz`` stay open so Prometheus and orchestrators need no secret
(they reveal counts, not gap details).

``/gaps``, ``/gaps/{id}`` and ``/skipped`` answer for the whole fleet (every instance of
the consumer group, from the gap log: :class:`~gapwatch.alerting.fleet.FleetStore`) with
the owning instance on each item; ``?scope=local`` answers from this instance's own store.
``/events`` streams gap changes as Server-Sent Events (:mod:`gapwatch.alerting.eventhub`).
``/topics`` shows the durability audit of the watched topics (settings, producers, findings;
:mod:`gapwatch.monitor.durability`), guarded by the token like ``/streams``.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations
# at runtime, and the token dependency is a closure it could not resolve from a string.

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Response
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry
from pydantic import Field

from gapwatch.alerting.changes import GapChange, skipped_json
from gapwatch.alerting.eventhub import (
    KEEPALIVE,
    EventHub,
    Subscription,
    format_change,
    format_reset,
)
from gapwatch.alerting.fleet import FleetStore
from gapwatch.core.model import GapState
from gapwatch.gaps.encoding import GapEncoder, owned_json
from gapwatch.gaps.origins import NOT_MIRRORED, OriginBook
from gapwatch.gaps.store import BadCursorError, GapQuery, GapStore
from gapwatch.monitor.api.models import (
    ErrorModel,
    GapPageModel,
    OwnedGapModel,
    SkippedPageModel,
    StatusModel,
    StreamsModel,
    TopicsModel,
)
from gapwatch.monitor.ingest.consumer import MonitorConsumer
from gapwatch.monitor.metrics.collector import MonitorCollector
from gapwatch.monitor.metrics.exposition import CONTENT_TYPE, MetricsPage
from gapwatch.monitor.state.partitions import OwnedPartitions
from gapwatch.version import __version__

MAX_LIMIT = 5000
DEFAULT_LIMIT = 100
Scope = Literal["fleet", "local"]


def _names_pattern(names: list[str]) -> str:
    """Names, comma-separated, spaces around them and empty items allowed."""
    name = "(" + "|".join(names) + ")"
    return rf"^ *{name}? *(, *{name}? *)*$"


# Each value is validated against its pattern, which the schema shows: exactly what is
# accepted is documented (a contract test checks both ways).
GAP_STATES_PATTERN = _names_pattern([state.value for state in GapState])
# A partition filter; empty means every partition, which is what the shipped alert rules'
# links carry when the metrics have no partition label (metrics_granularity: topic).
PartitionFilter = Annotated[
    Annotated[int, Field(ge=0)] | Literal[""] | None,
    Query(description="one partition; empty or absent: every partition"),
]
EVENT_STATES_PATTERN = _names_pattern([state.value for state in GapState] + ["skipped"])
REFUSED: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorModel, "description": "a parameter out of its documented range"}
}
UNKNOWN_GAP: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorModel, "description": "no such gap (unknown or expired)"}
}
FAILING: dict[int | str, dict[str, Any]] = {
    503: {"model": StatusModel, "description": "failing or not ready: see detail"}
}
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorModel,
        "description": "missing or wrong bearer token",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    }
}


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


def _parse_since(raw: float | datetime | None) -> float | None:
    if raw is None or isinstance(raw, float):
        return raw
    # RFC 3339 requires an offset; a date-time without one is ambiguous, so it is refused.
    if raw.tzinfo is None:
        raise HTTPException(422, "since needs a time zone (e.g. Z)")
    return raw.timestamp()


def _state_names(raw: list[str]) -> frozenset[str]:
    return frozenset(part.strip() for item in raw for part in item.split(",") if part.strip())


def _partition_or_every(partition: int | Literal[""] | None) -> int | None:
    """The partition a ``partition`` query asks for; ``None`` for every partition."""
    return None if partition == "" else partition


def _parse_states(raw: list[str] | None) -> frozenset[GapState] | None:
    if not raw:
        return None
    return frozenset(GapState(name) for name in _state_names(raw))


def _matches(change: GapChange, topic: str | None, states: frozenset[str] | None) -> bool:
    if topic is not None and change.topic != topic:
        return False
    return states is None or change.state in states


def _parse_event_states(raw: list[str] | None) -> frozenset[str] | None:
    return _state_names(raw) if raw else None


def _parse_last_id(raw: str | None) -> int | None:
    if raw is None or not raw.strip():
        return None
    try:
        return int(raw)
    except ValueError:
        # Not an id of ours (another server's?): treat it as older than anything buffered.
        return -2


async def _sse_stream(
    hub: EventHub,
    sub: Subscription,
    *,
    topic: str | None,
    states: frozenset[str] | None,
    keepalive: float,
) -> AsyncIterator[str]:
    try:
        yield ": gapwatch events\n\n"
        if sub.reset_to is not None:
            yield format_reset(sub.reset_to)
        for event_id, change in sub.replay:
            if _matches(change, topic, states):
                yield format_change(event_id, change)
        while True:
            try:
                async with asyncio.timeout(keepalive):
                    item = await sub.queue.get()
            except TimeoutError:
                yield KEEPALIVE
                continue
            if item is None:  # the hub closed (shutdown) or dropped a slow client
                return
            if _matches(item[1], topic, states):
                yield format_change(*item)
    finally:
        hub.unsubscribe(sub)


def create_app(
    *,
    store: GapStore,
    monitor: MonitorView,
    registry: CollectorRegistry,
    collector: MonitorCollector | None = None,
    token: str | None = None,
    fleet: FleetStore | None = None,
    hub: EventHub | None = None,
    instance: str = "",
    keepalive: float = 15.0,
    topics: Callable[[], dict[str, Any]] | None = None,
    origins: OriginBook | None = None,
) -> FastAPI:
    """The ASGI application serving ``store`` and ``monitor`` (one per process).

    ``/metrics`` shows ``collector``'s families (rendered lean) and everything else in
    ``registry``; the collector may also be registered there (it is then not repeated).
    Without ``fleet`` every scope is local; without ``hub`` there is no ``/events``; without
    ``topics`` (the durability audit's body of ``/topics``) there is no ``/topics``;
    ``origins`` adds where each gap of a mirrored topic came from (else those fields are
    ``null``).
    """

    encoder = GapEncoder(origins=origins)

    def find(gap_id: str, scope: Scope) -> dict[str, Any] | None:
        local = store.get(gap_id)
        found = fleet.get(gap_id) if fleet is not None and scope == "fleet" else None
        # The local record can be newer than the fleet's (the gap log is read back later).
        gap, owner = (local, instance) if local is not None else (None, "")
        if found is not None and (local is None or found[0].updated_at >= local.updated_at):
            gap, owner = found
        if gap is None:
            return None
        fields = NOT_MIRRORED if origins is None else origins.fields_of(gap)
        return owned_json(gap, owner, fields)

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

    # Without a token nothing is guarded, and the schema claims no security scheme.
    guarded = [Depends(require_token)] if token is not None else []
    denied = UNAUTHORIZED if token is not None else {}
    page = MetricsPage(registry=registry, collector=collector)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(await page.render(), media_type=CONTENT_TYPE)

    @app.get(
        "/gaps",
        response_model=GapPageModel,
        dependencies=guarded,
        responses={**REFUSED, **denied},
    )
    async def list_gaps(
        topic: str | None = None,
        partition: PartitionFilter = None,
        producer: str | None = None,
        state: Annotated[
            list[Annotated[str, Field(pattern=GAP_STATES_PATTERN)]] | None,
            Query(description="repeat or comma-separate"),
        ] = None,
        since: Annotated[
            Annotated[float, Field(allow_inf_nan=False)] | datetime | None,
            Query(description="epoch seconds or RFC 3339"),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        cursor: str | None = None,
        scope: Annotated[Scope, Query(description="fleet (every instance) or local")] = "fleet",
    ) -> Response:
        """Gaps of the whole fleet (or ``scope=local``: this instance), newest first."""
        query = GapQuery(
            topic=topic,
            partition=_partition_or_every(partition),
            producer=producer,
            states=_parse_states(state),
            since=_parse_since(since),
        )
        try:
            if fleet is not None and scope == "fleet":
                page = fleet.query(query, limit=limit, cursor=cursor)
                items = [(gap, fleet.owner(gap.id)) for gap in page.gaps]
            else:
                page = store.query(query, limit=limit, cursor=cursor)
                items = [(gap, instance) for gap in page.gaps]
        except BadCursorError as exc:
            raise HTTPException(422, str(exc)) from None
        return Response(encoder.page(items, page.next_cursor), media_type="application/json")

    @app.get(
        "/gaps/{gap_id}",
        response_model=OwnedGapModel,
        dependencies=guarded,
        responses={**UNKNOWN_GAP, **REFUSED, **denied},
    )
    async def get_gap(gap_id: str, scope: Scope = "fleet") -> Response:
        """One gap by id (404 if unknown or expired)."""
        found = find(gap_id, scope)
        if found is None:
            raise HTTPException(404, f"no gap {gap_id!r} known to this instance")
        return JSONResponse(found)

    @app.get(
        "/skipped",
        response_model=SkippedPageModel,
        dependencies=guarded,
        responses={**REFUSED, **denied},
    )
    async def list_skipped(
        topic: str | None = None,
        partition: PartitionFilter = None,
        scope: Scope = "fleet",
    ) -> Response:
        """Offset ranges retention deleted before they were read (not loss), newest first;
        optionally of one topic or one partition."""
        wanted = _partition_or_every(partition)
        if fleet is not None and scope == "fleet":
            owned = fleet.skipped()
        else:
            owned = [(s, instance) for s in reversed(store.skipped)]
        items = [
            {**skipped_json(s), "instance": who}
            for s, who in owned
            if (topic is None or s.topic == topic) and (wanted is None or s.partition == wanted)
        ]
        return JSONResponse({"skipped": items})

    if hub is not None:
        events_hub = hub

        @app.get(
            "/events",
            dependencies=guarded,
            response_class=StreamingResponse,
            responses={
                200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
                **REFUSED,
                **denied,
            },
        )
        async def events(
            topic: str | None = None,
            state: Annotated[
                list[Annotated[str, Field(pattern=EVENT_STATES_PATTERN)]] | None,
                Query(description="repeat or comma-separate"),
            ] = None,
            last_event_id: Annotated[str | None, Header()] = None,
            last_id: Annotated[str | None, Query(description="as the Last-Event-ID header")] = None,
        ) -> StreamingResponse:
            """Gap changes of the fleet as Server-Sent Events (``curl -N``); resumable.

            Each event's ``id`` is its gap log offset; reconnect with ``Last-Event-ID`` (or
            ``?last_id=``) to get what was missed from the replay buffer. If that is too
            old, a ``reset`` event comes first: re-read ``/gaps``.
            """
            states = _parse_event_states(state)
            sub = events_hub.subscribe(_parse_last_id(last_event_id or last_id))
            stream = _sse_stream(events_hub, sub, topic=topic, states=states, keepalive=keepalive)
            headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            return StreamingResponse(stream, media_type="text/event-stream", headers=headers)

    @app.get("/streams", response_model=StreamsModel, dependencies=guarded, responses=denied)
    async def streams() -> Response:
        """The partitions this instance owns and the producer streams on each."""
        return JSONResponse(monitor.streams_json())

    if topics is not None:
        topics_json = topics

        @app.get("/topics", response_model=TopicsModel, dependencies=guarded, responses=denied)
        async def list_topics() -> Response:
            """The durability audit: each watched topic's settings, stamped producers and
            findings (risks of loss, each with its reason and fix)."""
            return JSONResponse(topics_json())

    @app.get("/healthz", response_model=StatusModel, responses=FAILING)
    async def healthz() -> Response:
        """200 while the process works; 503 if the consumer has died."""
        is_healthy, detail = monitor.health()
        body = {"status": "ok" if is_healthy else "failing", "detail": detail}
        return JSONResponse(body, status_code=200 if is_healthy else 503)

    @app.get("/readyz", response_model=StatusModel, responses=FAILING)
    async def readyz() -> Response:
        """200 once every assigned partition's checkpoint is restored; else 503."""
        is_ready, detail = monitor.readiness()
        body = {"status": "ready" if is_ready else "not ready", "detail": detail}
        return JSONResponse(body, status_code=200 if is_ready else 503)

    return app


class MonitorStatus:
    """Streams, readiness and health of one running monitor.

    The :class:`MonitorView` the HTTP app asks; the composition root builds it from the
    parts it wired, so the answers read live state without the HTTP layer knowing those
    parts.
    """

    def __init__(
        self,
        *,
        instance: str,
        group_id: str,
        partitions: OwnedPartitions,
        consumer: MonitorConsumer,
        consumer_task: Callable[[], asyncio.Task[None] | None],
    ) -> None:
        self._instance = instance
        self._group_id = group_id
        self._partitions = partitions
        self._consumer = consumer
        # A callable: the consumer task exists only once the monitor has started.
        self._consumer_task = consumer_task

    def streams_json(self) -> dict[str, Any]:
        """This instance, its group and a summary of every partition it owns."""
        return {
            "instance": self._instance,
            "group_id": self._group_id,
            "partitions": [state.summary_json() for state in self._partitions],
        }

    def readiness(self) -> tuple[bool, str]:
        """Ready once the group assigned partitions and none is still being restored."""
        consumer = self._consumer
        if not consumer.is_assigned_once:
            return False, "waiting for the group to assign partitions"
        if consumer.restoring:
            names = ", ".join(f"{t}/{p}" for t, p in sorted(consumer.restoring))
            return False, f"restoring {names}"
        return True, f"{len(self._partitions)} partitions"

    def health(self) -> tuple[bool, str]:
        """Healthy while the consumer loop has not ended."""
        task = self._consumer_task()
        if task is not None and task.done():
            return False, "the consumer loop has stopped"
        return True, ""
