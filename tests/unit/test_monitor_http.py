"""The HTTP API over httpx's ASGI transport, against a real gap store and registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from monitor_factories import make_gap
from prometheus_client import CollectorRegistry, Counter

from gapwatch.core.events import RecordsSkipped
from gapwatch.core.model import GapState
from gapwatch.gaps.store import GapStore
from gapwatch.monitor.api.http import create_app
from gapwatch.monitor.api.models import GapModel

TOKEN = "0123456789abcdef-token"


class StaticMonitor:
    """A MonitorView with fixed answers."""

    def __init__(self) -> None:
        self.is_ready = False

    def streams_json(self) -> dict[str, Any]:
        return {"instance": "i-1", "group_id": "g", "partitions": []}

    def readiness(self) -> tuple[bool, str]:
        return self.is_ready, "" if self.is_ready else "restoring t/0"

    def health(self) -> tuple[bool, str]:
        return True, ""


@pytest.fixture
def gaps() -> GapStore:
    store = GapStore(closed_retention=3600.0, closed_limit=100)
    for seq in range(30):
        state = GapState.CONFIRMED if seq % 3 == 0 else GapState.OPEN
        store.put(make_gap(seq, opened_at=1_700_000_000.0 + seq, state=state, partition=seq % 2))
    return store


@pytest.fixture
def monitor() -> StaticMonitor:
    return StaticMonitor()


async def client_for(
    gaps: GapStore, monitor: StaticMonitor, token: str | None = None
) -> httpx.AsyncClient:
    registry = CollectorRegistry()
    Counter("gapwatch_test_things", "a test counter", registry=registry).inc(3)
    app = create_app(store=gaps, monitor=monitor, registry=registry, token=token)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


@pytest.fixture
async def client(gaps: GapStore, monitor: StaticMonitor) -> AsyncIterator[httpx.AsyncClient]:
    async with await client_for(gaps, monitor) as http:
        yield http


class TestGaps:
    async def test_list_newest_first_with_integer_fields(self, client: httpx.AsyncClient) -> None:
        """/gaps returns newest first; numbers are JSON integers."""
        body = (await client.get("/gaps", params={"limit": 5})).json()
        assert [g["first_seq"] for g in body["gaps"]] == [29, 28, 27, 26, 25]
        first = body["gaps"][0]
        for name in ("partition", "epoch", "first_seq", "last_seq", "count"):
            assert type(first[name]) is int
        assert body["next_cursor"]

    async def test_cursor_walks_all_pages(self, client: httpx.AsyncClient) -> None:
        """Following next_cursor returns each gap exactly once."""
        seen: list[int] = []
        params: dict[str, Any] = {"limit": 8}
        for _ in range(10):
            body = (await client.get("/gaps", params=params)).json()
            seen.extend(g["first_seq"] for g in body["gaps"])
            if body["next_cursor"] is None:
                break
            params["cursor"] = body["next_cursor"]
        assert sorted(seen) == list(range(30))
        assert len(seen) == 30

    async def test_state_and_partition_filters(self, client: httpx.AsyncClient) -> None:
        """state and partition filters combine."""
        body = (
            await client.get("/gaps", params={"state": "confirmed", "partition": 1, "limit": 100})
        ).json()
        assert sorted(g["first_seq"] for g in body["gaps"]) == [3, 9, 15, 21, 27]

    async def test_empty_partition_filter_means_every_partition(
        self, client: httpx.AsyncClient
    ) -> None:
        """partition= (what an alert link carries at metrics granularity topic) filters
        nothing; a partition that is not a number is still refused."""
        empty = await client.get("/gaps?state=confirmed&partition=&limit=100")
        absent = await client.get("/gaps?state=confirmed&limit=100")
        assert empty.status_code == 200
        assert empty.json() == absent.json()
        assert {g["partition"] for g in empty.json()["gaps"]} == {0, 1}
        assert (await client.get("/gaps?partition=x")).status_code == 422

    async def test_since_accepts_rfc3339(self, client: httpx.AsyncClient) -> None:
        """since takes RFC 3339 as well as epoch seconds."""
        by_iso = await client.get("/gaps", params={"since": "2023-11-14T22:13:48Z"})
        by_seconds = await client.get("/gaps", params={"since": "1700000028"})
        assert [g["first_seq"] for g in by_iso.json()["gaps"]] == [29, 28]
        assert by_iso.json() == by_seconds.json()

    async def test_bad_state_limit_and_cursor_are_422(self, client: httpx.AsyncClient) -> None:
        """Invalid filters are client errors, not server errors."""
        assert (await client.get("/gaps", params={"state": "lost"})).status_code == 422
        assert (await client.get("/gaps", params={"limit": 0})).status_code == 422
        assert (await client.get("/gaps", params={"limit": 1001})).status_code == 200
        assert (await client.get("/gaps", params={"cursor": "xx"})).status_code == 422

    async def test_get_one_and_missing(self, client: httpx.AsyncClient, gaps: GapStore) -> None:
        """/gaps/{id} returns the stored gap, 404 when unknown."""
        gap = make_gap(7, opened_at=1_700_000_007.0, partition=1)
        response = await client.get(f"/gaps/{gap.id}")
        assert response.status_code == 200
        assert response.json()["first_seq"] == 7
        assert (await client.get("/gaps/ffffffffffffffffffff")).status_code == 404

    def test_model_matches_gap_json(self) -> None:
        """The documented GapModel has exactly the fields Gap.to_json() produces."""
        produced = set(make_gap(1, opened_at=1.0).to_json())
        assert produced == set(GapModel.model_fields)


class TestSkipped:
    async def test_filters_by_topic_and_partition_newest_first(
        self, gaps: GapStore, monitor: StaticMonitor
    ) -> None:
        """/skipped lists retention-skipped ranges newest first; topic and partition
        narrow it (the skipped-records alert links to its own partition)."""
        for at, (topic, partition, first) in enumerate(
            [("t", 0, 10), ("t", 1, 20), ("u", 0, 30), ("t", 0, 40)]
        ):
            skipped = RecordsSkipped(topic, partition, first, first + 4, 5, 1_700_000_000.0 + at)
            gaps.handle([skipped], now=1_700_000_000.0 + at)
        async with await client_for(gaps, monitor) as http:
            every = (await http.get("/skipped")).json()["skipped"]
            one = (await http.get("/skipped", params={"topic": "t", "partition": 0})).json()
            topic_only = (await http.get("/skipped", params={"topic": "t"})).json()
            bad = await http.get("/skipped", params={"partition": -1})
            empty = (await http.get("/skipped?topic=t&partition=")).json()
        assert [s["first_offset"] for s in every] == [40, 30, 20, 10]
        assert [s["first_offset"] for s in one["skipped"]] == [40, 10]
        assert [s["first_offset"] for s in topic_only["skipped"]] == [40, 20, 10]
        assert empty == topic_only
        assert bad.status_code == 422


class TestOps:
    async def test_metrics_is_prometheus_text_without_redirect(
        self, client: httpx.AsyncClient
    ) -> None:
        """/metrics answers 200 directly in the text exposition format."""
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert "gapwatch_test_things_total 3.0" in response.text

    async def test_readyz_follows_the_monitor(
        self, client: httpx.AsyncClient, monitor: StaticMonitor
    ) -> None:
        """/readyz is 503 until the monitor says it is ready."""
        not_ready = await client.get("/readyz")
        assert not_ready.status_code == 503
        assert "restoring" in not_ready.json()["detail"]
        monitor.is_ready = True
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get("/healthz")).status_code == 200

    async def test_openapi_docs_are_served(self, client: httpx.AsyncClient) -> None:
        """/docs and the OpenAPI schema describe /gaps."""
        assert (await client.get("/docs")).status_code == 200
        schema = (await client.get("/openapi.json")).json()
        assert "/gaps" in schema["paths"]
        assert "/gaps/{gap_id}" in schema["paths"]


class TestToken:
    async def test_token_guards_gaps_but_not_metrics(
        self, gaps: GapStore, monitor: StaticMonitor
    ) -> None:
        """With a token, /gaps and /streams need it; /metrics and /healthz do not."""
        async with await client_for(gaps, monitor, token=TOKEN) as http:
            assert (await http.get("/gaps")).status_code == 401
            wrong = {"Authorization": "Bearer " + "x" * len(TOKEN)}
            assert (await http.get("/gaps", headers=wrong)).status_code == 401
            right = {"Authorization": f"Bearer {TOKEN}"}
            assert (await http.get("/gaps", headers=right)).status_code == 200
            assert (await http.get("/streams")).status_code == 401
            assert (await http.get("/streams", headers=right)).json()["instance"] == "i-1"
            assert (await http.get("/metrics")).status_code == 200
            assert (await http.get("/healthz")).status_code == 200
