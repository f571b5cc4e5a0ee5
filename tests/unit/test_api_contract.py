"""The HTTP API does exactly what its served OpenAPI schema says, with and without a token.

Schemathesis generates requests from ``/openapi.json`` (valid ones and ones the schema
forbids) against a real monitor's app in-process and runs all of its checks: no server
error, documented status codes, content types, headers and bodies, schema-valid requests
accepted, schema-invalid ones refused, a token asked for exactly where the schema says.
The endless ``/events`` stream is left out of the generated tests; its handshake (status,
content type, ``Last-Event-ID``, token) is tested below against a real uvicorn server,
reading the first bytes and closing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
import schemathesis
from api_contract_support import FedLoss, built_monitor, feed_loss, serving
from schemathesis import Case, GenerationMode

from gapwatch.monitor.app import RunningMonitor

TOKEN = "contract-token-0123456789"
# Enough for every kind of request each operation takes (the whole run takes a few
# seconds); the seed makes a CI failure reproducible.
EXAMPLES = 40
SEED = 20261205


def contract_config(*, token: str | None) -> schemathesis.Config:
    settings: dict[str, object] = {
        "seed": SEED,
        # No state kept between runs (replayed old failures): each run is the same run.
        "cache": {"enabled": False},
        "generation": {"mode": "all", "max-examples": EXAMPLES, "deterministic": True},
        # A monitor that has not joined its group is not ready: /readyz's documented 503
        # (with a body saying why) is its answer, not a server error.
        "operations": [
            {
                "include-path": "/readyz",
                "checks": {"not_a_server_error": {"expected-statuses": ["2XX", "4XX", 503]}},
            }
        ],
    }
    if token is not None:
        settings["auth"] = {"openapi": {"HTTPBearer": {"bearer": token}}}
    return schemathesis.Config.from_dict(settings)


def use_issued_values(case: Case, fed: FedLoss) -> None:
    """Give opaque parameters values the monitor issued, as a client would.

    A cursor is only valid if this monitor issued it, which no schema can state; a random
    one is refused (422, documented), so valid requests carry a real one. Half of the gap
    ids become real ones, so ``/gaps/{gap_id}`` answers 200 as well as 404.
    """
    meta = case.meta
    if meta is None or meta.generation.mode is not GenerationMode.POSITIVE:
        return
    if case.query and case.query.get("cursor") is not None:
        case.query = {**case.query, "cursor": fed.cursor}
    gap_id = case.path_parameters.get("gap_id") if case.path_parameters else None
    if isinstance(gap_id, str) and len(gap_id) % 2 == 0:
        case.path_parameters = {"gap_id": fed.gap_ids[len(gap_id) % len(fed.gap_ids)]}


# Built at import: schemathesis makes one test per operation from a schema it has when the
# tests are collected. The monitors are only read by these tests.
OPEN_MONITOR = built_monitor(token=None)
OPEN_LOSS = feed_loss(OPEN_MONITOR)
GUARDED_MONITOR = built_monitor(token=TOKEN)
GUARDED_LOSS = feed_loss(GUARDED_MONITOR)
open_schema = schemathesis.openapi.from_asgi(
    "/openapi.json", OPEN_MONITOR.app, config=contract_config(token=None)
).exclude(path="/events")
guarded_schema = schemathesis.openapi.from_asgi(
    "/openapi.json", GUARDED_MONITOR.app, config=contract_config(token=TOKEN)
).exclude(path="/events")


@open_schema.parametrize()
def test_api_without_token_keeps_its_schema(case: Case) -> None:
    """Without a token every operation answers as documented and claims no security."""
    use_issued_values(case, OPEN_LOSS)
    case.call_and_validate()


@guarded_schema.parametrize()
def test_api_with_token_keeps_its_schema(case: Case) -> None:
    """With a token every operation answers as documented, 401 where the token is
    missing or wrong."""
    use_issued_values(case, GUARDED_LOSS)
    case.call_and_validate()


@pytest.fixture
def open_monitor() -> tuple[RunningMonitor, FedLoss]:
    monitor = built_monitor(token=None)
    return monitor, feed_loss(monitor)


@pytest.fixture
def guarded_monitor() -> tuple[RunningMonitor, FedLoss]:
    monitor = built_monitor(token=TOKEN)
    return monitor, feed_loss(monitor)


class TestSchemaClaims:
    def test_security_is_claimed_only_with_a_token(self) -> None:
        """The schema names a bearer scheme exactly when a token is configured, and only
        on the guarded operations."""
        open_paths = built_monitor(token=None).app.openapi()
        guarded = built_monitor(token=TOKEN).app.openapi()
        assert "securitySchemes" not in open_paths.get("components", {})
        assert all(
            "security" not in op for ops in open_paths["paths"].values() for op in ops.values()
        )
        secured = {path for path, ops in guarded["paths"].items() if "security" in ops["get"]}
        assert secured == {"/gaps", "/gaps/{gap_id}", "/skipped", "/streams", "/events", "/topics"}
        assert all("401" in guarded["paths"][path]["get"]["responses"] for path in secured)


class TestTokenSecrecy:
    async def test_token_appears_in_no_answer_and_no_log(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The configured token is in no response body or header (schema, /streams,
        errors) and in no log line."""
        monitor = built_monitor(token=TOKEN)
        feed_loss(monitor)
        transport = httpx.ASGITransport(app=monitor.app)
        right = {"Authorization": f"Bearer {TOKEN}"}
        caplog.set_level("DEBUG")
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            answers = [
                await http.get("/openapi.json"),
                await http.get("/streams", headers=right),
                await http.get("/gaps", headers=right),
                await http.get("/gaps", headers={"Authorization": "Bearer wrong-token-000000"}),
                await http.get("/gaps?limit=0", headers=right),
            ]
        assert [a.status_code for a in answers] == [200, 200, 200, 401, 422]
        for answer in answers:
            assert TOKEN not in answer.text
            assert TOKEN not in str(answer.headers)
        assert TOKEN not in caplog.text
        assert TOKEN not in repr(monitor.config)


async def first_bytes(
    url: str, headers: dict[str, str] | None = None, *, size: int = 4096
) -> tuple[httpx.Response, str]:
    """The response to ``GET url`` and the start of its body, read until ``size``
    characters or a pause in the stream; then the connection is closed."""
    async with (
        httpx.AsyncClient(timeout=5.0) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        text = ""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                async for chunk in response.aiter_text():
                    text += chunk
                    if len(text) >= size:
                        break
        return response, text


@pytest.fixture
async def open_events(
    open_monitor: tuple[RunningMonitor, FedLoss],
) -> AsyncIterator[tuple[str, FedLoss]]:
    monitor, fed = open_monitor
    async with serving(monitor) as base:
        yield f"{base}/events", fed


@pytest.fixture
async def guarded_events(
    guarded_monitor: tuple[RunningMonitor, FedLoss],
) -> AsyncIterator[tuple[str, FedLoss]]:
    monitor, fed = guarded_monitor
    async with serving(monitor) as base:
        yield f"{base}/events", fed


def event_ids(text: str) -> list[int]:
    return [int(line[4:]) for line in text.splitlines() if line.startswith("id: ")]


class TestEventsHandshake:
    async def test_opens_an_event_stream(self, open_events: tuple[str, FedLoss]) -> None:
        """/events answers 200 with text/event-stream, no caching, and a first comment;
        without Last-Event-ID nothing old is replayed."""
        url, _ = open_events
        response, text = await first_bytes(url)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert text.startswith(": gapwatch events\n\n")
        assert event_ids(text) == []

    async def test_last_event_id_replays_what_followed(
        self, open_events: tuple[str, FedLoss]
    ) -> None:
        """Last-Event-ID (or ?last_id=) replays exactly the buffered events after it."""
        url, fed = open_events
        after = fed.event_ids[0]
        _, by_header = await first_bytes(url, {"Last-Event-ID": str(after)})
        _, by_query = await first_bytes(f"{url}?last_id={after}")
        assert event_ids(by_header) == list(fed.event_ids[1:])
        assert event_ids(by_query) == list(fed.event_ids[1:])

    async def test_state_filter_is_checked(self, open_events: tuple[str, FedLoss]) -> None:
        """An unknown state is refused with 422 before any stream is opened."""
        url, _ = open_events
        response, _ = await first_bytes(f"{url}?state=lost")
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/json"

    async def test_token_guards_the_stream(self, guarded_events: tuple[str, FedLoss]) -> None:
        """With a token, /events is 401 without it or with a wrong one, and streams with it."""
        url, fed = guarded_events
        missing, _ = await first_bytes(url)
        wrong, _ = await first_bytes(url, {"Authorization": "Bearer " + "x" * len(TOKEN)})
        right, text = await first_bytes(
            url, {"Authorization": f"Bearer {TOKEN}", "Last-Event-ID": "-1"}
        )
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert wrong.status_code == 401
        assert right.status_code == 200
        assert event_ids(text) == list(fed.event_ids)
