"""GET /events on a real monitor: concurrent clients, resuming with Last-Event-ID, shutdown."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from monitor_support import monitor_config, send_stamped, wait_until
from prometheus_client import CollectorRegistry

from gapwatch.monitor.app import RunningMonitor
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.kafka


@dataclass
class SseClient:
    """Reads /events in a task; keeps every (id, data) and every comment it gets."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    resets: list[dict[str, Any]] = field(default_factory=list)
    comments: int = 0
    ended: bool = False
    task: asyncio.Task[None] | None = None

    def start(self) -> SseClient:
        self.task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=60.0)) as http,
            http.stream("GET", self.url, headers=self.headers) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            event: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    self.comments += 1
                elif line == "":
                    if event.get("event") == "reset":
                        self.resets.append(json.loads(event["data"]))
                    elif "data" in event:
                        self.events.append((int(event["id"]), json.loads(event["data"])))
                    event = {}
                else:
                    name, _, value = line.partition(": ")
                    event[name] = value
        self.ended = True

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    def confirmed(self) -> set[int]:
        return {e["gap"]["first_seq"] for _, e in self.events if e["kind"] == "confirmed"}


async def test_two_clients_and_a_resumed_one_miss_nothing(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    """Both clients get the same events; a client that reconnects with Last-Event-ID gets
    exactly the events it missed; a state filter applies."""
    topic = await make_topic(partitions=1)
    bootstrap = kafka.bootstrap_servers
    config = monitor_config(bootstrap, [topic], f"g-{topic}")
    monitor = RunningMonitor(config, registry=CollectorRegistry(), instance_id="gw-a")
    await monitor.start()
    url = f"http://127.0.0.1:{monitor.http_port}/events"
    steady = SseClient(url).start()
    leaving = SseClient(url).start()
    only_confirmed = SseClient(url + f"?state=confirmed&topic={topic}").start()
    try:
        await asyncio.sleep(0.5)
        await send_stamped(bootstrap, topic, 0, [0, 1, 3, 4])  # gap at 2

        async def first_confirmed() -> bool:
            return leaving.confirmed() == {2} and steady.confirmed() == {2}

        await wait_until(first_confirmed, within=30.0)
        await leaving.stop()
        last_id = leaving.events[-1][0]
        await send_stamped(bootstrap, topic, 0, [6, 7, 9])  # gaps at 5 and 8

        async def later_confirmed() -> bool:
            return steady.confirmed() == {2, 5, 8}

        await wait_until(later_confirmed, within=30.0)
        resumed = SseClient(url, headers={"Last-Event-ID": str(last_id)}).start()

        async def caught_up() -> bool:
            return bool(resumed.events) and resumed.events[-1][0] == steady.events[-1][0]

        await wait_until(caught_up, within=15.0)
        await resumed.stop()
    finally:
        await steady.stop()
        await only_confirmed.stop()
        await monitor.stop()
    ids = [i for i, _ in steady.events]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert [i for i, _ in leaving.events] == [i for i in ids if i <= last_id]
    assert [i for i, _ in resumed.events] == [i for i in ids if i > last_id]
    assert resumed.resets == []
    assert {e["kind"] for _, e in steady.events} >= {"opened", "confirmed"}
    assert {e["gap"]["state"] for _, e in only_confirmed.events} == {"confirmed"}
    assert only_confirmed.confirmed() == {2, 5, 8}
    assert all(e["gap"]["instance"] == "gw-a" for _, e in steady.events)


async def test_open_streams_end_on_shutdown_and_keepalives_flow(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    """A connected client gets keep-alive comments, and stop() ends its stream promptly
    instead of waiting for uvicorn's graceful-shutdown timeout."""
    topic = await make_topic(partitions=1)
    config = monitor_config(kafka.bootstrap_servers, [topic], f"g-{topic}")
    import dataclasses

    config = dataclasses.replace(config, events=dataclasses.replace(config.events, keepalive=0.2))
    monitor = RunningMonitor(config, registry=CollectorRegistry())
    await monitor.start()
    client = SseClient(f"http://127.0.0.1:{monitor.http_port}/events").start()
    try:

        async def kept_alive() -> bool:
            return client.comments >= 3

        await wait_until(kept_alive, within=10.0)
        started = time.monotonic()
    finally:
        await monitor.stop()
    stopped_in = time.monotonic() - started
    await asyncio.wait_for(asyncio.shield(client.task), 5.0)  # type: ignore[arg-type]
    assert client.ended
    assert stopped_in < 4.0, f"stop() took {stopped_in:.1f}s"
