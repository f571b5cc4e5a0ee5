"""THE composition root of ``gapwatch monitor``: builds every part and runs them together.

Everything else receives what it needs as arguments; only here are config, Kafka
clients, trackers, the gap store, the event fan-out, metrics and the HTTP server wired,
and all of them run on one asyncio event loop (uvicorn serves the API in the same loop
as the consumer; one worker). Start-up order: refuse compacted topics, ensure the
checkpoint topic, start checkpoints and the consumer, serve HTTP, run the loop. Shutdown
(SIGTERM/SIGINT or :meth:`RunningMonitor.stop`): checkpoint and commit, leave the group,
stop HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import uvicorn
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import REGISTRY, CollectorRegistry

from gapwatch.monitor.checkpoints import CheckpointStore
from gapwatch.monitor.config import MonitorConfig
from gapwatch.monitor.consumer import MonitorConsumer
from gapwatch.monitor.fanout import EventFanout
from gapwatch.monitor.gapstore import GapStore
from gapwatch.monitor.http import create_app
from gapwatch.monitor.kafka_clients import client_kwargs
from gapwatch.monitor.metrics import MonitorCollector, MonitorHealth
from gapwatch.monitor.partitions import OwnedPartitions
from gapwatch.monitor.reports import ReportReader
from gapwatch.monitor.topics import (
    CHECKPOINT_TOPIC_CONFIGS,
    CHECKPOINT_TOPIC_PARTITIONS,
    cleanup_policies,
    ensure_topic,
    refuse_compacted,
)

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0


class _Server(uvicorn.Server):
    """uvicorn without its signal capture: SIGTERM must reach the monitor, which checkpoints
    and commits before exiting, instead of only stopping the HTTP server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class _View:
    """The :class:`~gapwatch.monitor.http.MonitorView` of a running monitor."""

    def __init__(self, monitor: RunningMonitor) -> None:
        self._monitor = monitor

    def streams_json(self) -> dict[str, Any]:
        m = self._monitor
        return {
            "instance": m.instance_id,
            "group_id": m.config.watch.group_id,
            "partitions": [state.summary_json() for state in m.partitions],
        }

    def readiness(self) -> tuple[bool, str]:
        consumer = self._monitor.consumer
        if not consumer.is_assigned_once:
            return False, "waiting for the group to assign partitions"
        if consumer.restoring:
            names = ", ".join(f"{t}/{p}" for t, p in sorted(consumer.restoring))
            return False, f"restoring {names}"
        return True, f"{len(self._monitor.partitions)} partitions"

    def health(self) -> tuple[bool, str]:
        task = self._monitor.consumer_task
        if task is not None and task.done():
            return False, "the consumer loop has stopped"
        return True, ""


class RunningMonitor:
    """A monitor built from a config: :meth:`start`, then :meth:`wait` or :meth:`stop`."""

    def __init__(self, config: MonitorConfig, *, registry: CollectorRegistry = REGISTRY) -> None:
        self.config = config
        self.instance_id = f"{socket.gethostname()}/{os.getpid()}"
        self._kwargs = client_kwargs(config.kafka)
        self.partitions = OwnedPartitions(config.tracker.to_tracker_config())
        self.store = GapStore(
            closed_retention=config.gap_store.closed_retention,
            closed_limit=config.gap_store.closed_limit,
        )
        self.fanout = EventFanout()
        self.fanout.subscribe(self.store)
        self.health = MonitorHealth(subscriber_failures=self.fanout.failures)
        self.checkpoints = CheckpointStore(
            client_kwargs=client_kwargs(config.kafka, suffix="-checkpoints"),
            topic=config.checkpoints.topic,
            group_id=config.watch.group_id,
        )
        self.consumer = MonitorConsumer(
            config=config,
            client_kwargs=self._kwargs,
            partitions=self.partitions,
            fanout=self.fanout,
            store=self.store,
            checkpoints=self.checkpoints,
            health=self.health,
        )
        self.health.is_up = self.consumer.is_up
        self.reports: ReportReader | None = None
        if config.reports.enabled:
            self.reports = ReportReader(
                client_kwargs=client_kwargs(config.kafka, suffix="-reports"),
                topic=config.reports.topic,
                consumer=self.consumer,
                partitions=self.partitions,
                fanout=self.fanout,
                health=self.health,
            )
        self.registry = registry
        self._collector = MonitorCollector(self.partitions, self.health)
        registry.register(self._collector)
        self.app = create_app(
            store=self.store,
            monitor=_View(self),
            registry=registry,
            collector=self._collector,
            token=config.http.token,
        )
        self.consumer_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._server: uvicorn.Server | None = None
        self.http_port: int | None = None

    async def _prepare_topics(self) -> None:
        admin = AIOKafkaAdminClient(**client_kwargs(self.config.kafka, suffix="-admin"))
        await admin.start()
        try:
            async with asyncio.timeout(START_TIMEOUT):
                if self.config.watch.topics:
                    policies = await cleanup_policies(admin, self.config.watch.topics)
                    refuse_compacted(policies, allow_compacted=self.config.watch.allow_compacted)
                await ensure_topic(
                    admin,
                    self.config.checkpoints.topic,
                    partitions=CHECKPOINT_TOPIC_PARTITIONS,
                    configs=CHECKPOINT_TOPIC_CONFIGS,
                )
        finally:
            await admin.close()

    async def start(self) -> None:
        """Check topics, connect, join the group and serve HTTP; returns once serving."""
        await self._prepare_topics()
        await self.checkpoints.start()
        await self.consumer.start()
        self.consumer_task = asyncio.create_task(self.consumer.run(), name="gapwatch-consumer")
        self._tasks.append(self.consumer_task)
        if self.reports is not None:
            await self.reports.start()
            self._tasks.append(asyncio.create_task(self.reports.run(), name="gapwatch-reports"))
        server_config = uvicorn.Config(
            self.app,
            host=self.config.http.host,
            port=self.config.http.port,
            log_level="warning",
            lifespan="off",
        )
        self._server = _Server(server_config)
        self._tasks.append(asyncio.create_task(self._server.serve(), name="gapwatch-http"))
        async with asyncio.timeout(START_TIMEOUT):
            while not self._server.started:
                if self._tasks[-1].done():
                    self._tasks[-1].result()
                await asyncio.sleep(0.05)
        sockets = [s for server in self._server.servers for s in server.sockets]
        self.http_port = sockets[0].getsockname()[1] if sockets else self.config.http.port
        log.info("gapwatch monitor serving on http://%s:%s", self.config.http.host, self.http_port)

    async def wait(self) -> None:
        """Until the consumer loop ends (stop requested, or it failed: then re-raise)."""
        assert self.consumer_task is not None
        await self.consumer_task

    async def stop(self) -> None:
        """Checkpoint and commit, leave the group, stop HTTP (each step even if one fails)."""
        self.consumer.request_stop()
        steps: list[Callable[[], Awaitable[None]]] = [self._join_consumer, self.consumer.stop]
        if self.reports is not None:
            steps.append(self.reports.stop)
        steps.append(self.checkpoints.stop)
        for step in steps:
            try:
                await step()
            except Exception:
                log.exception("shutdown step %s failed", getattr(step, "__name__", step))
        if self._server is not None:
            self._server.should_exit = True
        for task in self._tasks:
            if task is not self.consumer_task:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.registry.unregister(self._collector)

    async def _join_consumer(self) -> None:
        if self.consumer_task is not None:
            async with asyncio.timeout(30.0):
                await asyncio.shield(self.consumer_task)


async def run_monitor(config: MonitorConfig) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code."""
    monitor = RunningMonitor(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await monitor.start()
    except Exception:
        await monitor.stop()
        raise
    print(f"gapwatch monitor: http://{config.http.host}:{monitor.http_port}/gaps", flush=True)
    waiter = asyncio.create_task(stop.wait())
    assert monitor.consumer_task is not None
    done, _ = await asyncio.wait(
        {waiter, monitor.consumer_task}, return_when=asyncio.FIRST_COMPLETED
    )
    waiter.cancel()
    failed = monitor.consumer_task in done and monitor.consumer_task.exception() is not None
    await monitor.stop()
    return 1 if failed else 0
