"""A real monitor's HTTP app, never started, holding gaps a real tracker found; served.

:func:`built_monitor` builds a :class:`RunningMonitor` (building opens no connection), so
the app under test is the one ``gapwatch monitor`` serves, wired to its real gap store,
fleet view, event hub and status view. :func:`feed_loss` reads a stamped partition with
missing sequences through the partition's own tracker and publishes what it found the way
the consumer loop does (store, gap log, fleet view) and onto ``/events``' hub, the way the
gap log reader does. :func:`serving` serves the app with the monitor's own server settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn
from prometheus_client import CollectorRegistry

from gapwatch.alerting.changes import changes_from_events
from gapwatch.core.durability import PartitionPlacement, TopicSettings
from gapwatch.core.model import ProducerReport, WriteSettings
from gapwatch.core.wire import Stamp
from gapwatch.gaps.store import GapQuery
from gapwatch.kafka.settings import KafkaSettings
from gapwatch.monitor.app import RunningMonitor, http_server_config
from gapwatch.monitor.config import HttpSettings, MonitorConfig, TrackerSettings, WatchSettings

TOPIC = "orders"
GROUP = "contract"
INSTANCE = "contract-1"
START = 1_700_000_000.0


@dataclass(frozen=True, slots=True)
class FedLoss:
    """What :func:`feed_loss` put into the monitor."""

    gap_ids: tuple[str, ...]
    cursor: str  # a next_cursor the monitor issued: its first page of one gap
    event_ids: tuple[int, ...]  # ids of the changes on /events, oldest first


def built_monitor(*, token: str | None, http: HttpSettings | None = None) -> RunningMonitor:
    """A monitor of :data:`TOPIC` built from its config, with an HTTP token or without,
    on a free loopback port (``http``: its other HTTP settings)."""
    http = dataclasses.replace(http or HttpSettings(), token=token, port=free_port())
    config = MonitorConfig(
        kafka=KafkaSettings(bootstrap_servers=("127.0.0.1:9",)),
        watch=WatchSettings(topics=(TOPIC,), group_id=GROUP),
        tracker=TrackerSettings(grace_period=1.0),
        http=http,
    ).validate()
    return RunningMonitor(config, registry=CollectorRegistry(), instance_id=INSTANCE)


def feed_loss(monitor: RunningMonitor) -> FedLoss:
    """Partition 0 loses sequences 3-4 and 7-8 (then confirmed), partition 1 has offsets
    deleted by retention before they were read."""
    now = START
    events = []
    lossy = monitor.partitions.add(TOPIC, 0)
    lossy.mark_restored()
    for offset, seq in enumerate([0, 1, 2, 5, 6, 9, 10]):
        events += lossy.tracker.observe(offset, int(now * 1000), Stamp("p-1", 1, seq), now)
        now += 1.0
    now += 5.0
    events += lossy.tracker.tick(now)
    skipping = monitor.partitions.add(TOPIC, 1)
    skipping.mark_restored()
    events += skipping.tracker.observe(0, int(now * 1000), Stamp("p-2", 1, 0), now)
    events += skipping.tracker.records_skipped(1, 9, now)
    monitor.fanout.publish(events, now)
    changes = changes_from_events(events, group=GROUP, instance=INSTANCE, now=now)
    event_ids = tuple(range(len(changes)))
    for event_id, change in zip(event_ids, changes, strict=True):
        monitor.hub.publish(event_id, change)
    feed_durability(monitor, now)
    gaps = sorted(monitor.store.values(), key=lambda gap: gap.first_seq)
    first_page = monitor.store.query(GapQuery(), limit=1)
    assert first_page.next_cursor is not None
    return FedLoss(
        gap_ids=tuple(gap.id for gap in gaps), cursor=first_page.next_cursor, event_ids=event_ids
    )


def feed_durability(monitor: RunningMonitor, now: float) -> None:
    """The durability audit holds :data:`TOPIC` with RF 2, min ISR 1 and one partition
    under-replicated, and a producer reporting acks=1 without idempotence."""
    audit = monitor.durability
    assert audit is not None, "the audit is on by default"
    placements = (
        PartitionPlacement(0, leader=1, replicas=(1, 2), isr=(1, 2)),
        PartitionPlacement(1, leader=2, replicas=(2, 1), isr=(2,)),
    )
    settings = TopicSettings(
        topic=TOPIC,
        min_insync_replicas=1,
        unclean_leader_election=False,
        partitions=placements,
        racks={1: None, 2: None},
        config_sources={"min.insync.replicas": "kafka default"},
    )
    audit.record({TOPIC: settings}, now)
    report = ProducerReport("p-1", 1, TOPIC, 0, highest_assigned=10, highest_acked=10)
    audit.writes.note(report, WriteSettings(acks="1", idempotence=False), at=time.time())


def free_port() -> int:
    """A loopback TCP port free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serving(monitor: RunningMonitor) -> AsyncIterator[str]:
    """The monitor's app served as ``gapwatch monitor`` serves it (a real uvicorn server on
    its configured loopback port, HTTPS if configured); yields the base URL."""
    http = monitor.config.http
    server = uvicorn.Server(http_server_config(monitor.app, http))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        yield f"{http.scheme}://{http.host}:{http.port}"
    finally:
        # Open streams end first, so the server's shutdown does not wait for them.
        monitor.hub.close()
        server.should_exit = True
        async with asyncio.timeout(10):
            await task
