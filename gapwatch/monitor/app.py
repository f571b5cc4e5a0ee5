"""THE composition root of ``gapwatch monitor``: builds every part and runs them together.

Everything else receives what it needs as arguments; only here are config, Kafka
clients, trackers, the gap store, the event fan-out, metrics and the HTTP server wired,
and all of them run on one asyncio event loop (uvicorn serves the API in the same loop
as the consumer; one worker). Start-up order: refuse compacted topics, ensure the
checkpoint, gap log and producer report topics, start the gap log writer, read the gap
log into the fleet view, start checkpoints, the canary (``--canary``: it creates its topic,
which the consumer then reads like a watched one) and the consumer, the sinks, serve HTTP,
run the loop. Shutdown (SIGTERM/SIGINT or :meth:`RunningMonitor.stop`): stop the canary's
writes, checkpoint and commit (after the gap log has everything, see
:mod:`gapwatch.alerting.gaplog`), leave the group, drain the gap log, stop the sinks, end
``/events`` streams, stop HTTP.

Event subscribers, in order: the local gap store, the gap log writer, the fleet view
(this instance's changes at once; everyone's arrive again from the gap log), then the
Alertmanager and webhook sinks.

The durability audit (unless ``durability_refresh`` is 0) runs as a task of its own, started
last: it reads the watched topics' settings and placement every refresh, takes the
producers' write settings from the report reader, and is shown by ``/topics`` and
``gapwatch_durability_*``.

Every part is built completely in :class:`RunningMonitor`'s constructor, each given what it
calls (the consumer's lock and its assignment callbacks, the collector's health
questions), so nothing is patched onto an object after it was made. Also here, because
only start-up uses them: checking and creating the topics (:func:`prepare_topics`) and
building the alert sinks from the config.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Collection, Generator

import uvicorn
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI
from prometheus_client import REGISTRY, CollectorRegistry

from gapwatch.alerting.alertbook import AlertBook
from gapwatch.alerting.alertmanager import AlertmanagerSink
from gapwatch.alerting.alertpolicy import AlertPolicy
from gapwatch.alerting.changes import ChangeKind
from gapwatch.alerting.delivery import DeliverySettings, SinkStats
from gapwatch.alerting.eventhub import EventHub
from gapwatch.alerting.fleet import FleetFeed, FleetStore
from gapwatch.alerting.gaplog import GapLogPublisher, GapLogReader, gap_log_topic_configs
from gapwatch.alerting.metrics import AlertingCollector
from gapwatch.alerting.webhook import WebhookSink
from gapwatch.core.model import GapState
from gapwatch.errors import KafkaAuthorizationError
from gapwatch.gaps.fanout import EventFanout
from gapwatch.gaps.origins import OriginBook
from gapwatch.gaps.store import GapStore
from gapwatch.kafka.acl_requests import require_granted
from gapwatch.kafka.acls import (
    Acl,
    MonitorAccess,
    Operation,
    ResourceType,
    denied_line,
    monitor_acls,
    principal_of,
)
from gapwatch.kafka.canary.metrics import CanaryCollector, PartitionLatencies
from gapwatch.kafka.canary.runner import Canary
from gapwatch.kafka.checkpoints import CheckpointStore
from gapwatch.kafka.partition_reader import ReaderPool
from gapwatch.kafka.settings import KafkaSettings, client_kwargs
from gapwatch.kafka.startup_errors import explained_start
from gapwatch.kafka.topic_facts import TopicFactsReader
from gapwatch.kafka.topics import (
    CHECKPOINT_TOPIC_CONFIGS,
    CHECKPOINT_TOPIC_PARTITIONS,
    TopicCreationDeniedError,
    cleanup_policies,
    ensure_topic,
    refuse_compacted,
)
from gapwatch.monitor.api.http import MonitorStatus, create_app
from gapwatch.monitor.config import HttpSettings, MonitorConfig, with_canary_watched
from gapwatch.monitor.durability import DurabilityAudit
from gapwatch.monitor.health import MonitorHealth
from gapwatch.monitor.ingest.consumer import MonitorConsumer
from gapwatch.monitor.ingest.reports import ReportReader, ensure_report_topic
from gapwatch.monitor.metrics.collector import MonitorCollector
from gapwatch.monitor.metrics.durability import DurabilityCollector
from gapwatch.monitor.metrics.topics import TopicTotals
from gapwatch.monitor.mirror.attributor import MirrorAttributor
from gapwatch.monitor.mirror.lag import MirrorLag
from gapwatch.monitor.mirror.metrics import MirrorCollector
from gapwatch.monitor.mirror.sources import keep_connecting
from gapwatch.monitor.mirror.table import MirrorTable
from gapwatch.monitor.state.partitions import OwnedPartitions, PartitionState
from gapwatch.monitor.state.producer_writes import ProducerWritesBook

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0
DURABILITY_TIMEOUT = 30.0  # one read of the watched topics' settings, at most
GRACEFUL_SHUTDOWN = 5  # uvicorn's limit for open connections at exit (after /events end)
_LOSS_STATES = frozenset((GapState.CONFIRMED, GapState.TRUNCATED))


class _Server(uvicorn.Server):
    """uvicorn without its signal capture: SIGTERM must reach the monitor, which checkpoints
    and commits before exiting, instead of only stopping the HTTP server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class RunningMonitor:
    """A monitor built from a config: :meth:`start`, then :meth:`wait` or :meth:`stop`."""

    def __init__(
        self,
        config: MonitorConfig,
        *,
        registry: CollectorRegistry = REGISTRY,
        instance_id: str | None = None,
        on_restore_step: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_restore_step`` is called after each step of restoring assigned partitions:
        the process's heap is its owner's business (``gapwatch monitor`` freezes it)."""
        self.config = config
        # Names the owner of each gap in the fleet view; unique per process by default.
        self.instance_id = instance_id or f"{socket.gethostname()}/{os.getpid()}"
        self._kwargs = client_kwargs(config.kafka)
        # The canary writes its topic; the consumer reads it with the watched topics.
        self.canary = (
            Canary(
                config.canary,
                client_kwargs=client_kwargs(config.kafka),
                principal=principal_of(config.kafka.security),
            )
            if config.canary.enabled
            else None
        )
        self.partitions = OwnedPartitions(
            config.tracker.to_tracker_config(),
            latency_per_partition=(config.canary.topic,) if self.canary is not None else (),
        )
        self.store = GapStore(
            closed_retention=config.gap_store.closed_retention,
            closed_limit=config.gap_store.closed_limit,
        )
        self.fanout = EventFanout()
        self.fanout.subscribe(self.store)
        self.health = MonitorHealth(subscriber_failures=self.fanout.failures)
        group = config.watch.group_id
        self.fleet = FleetStore(
            group=group,
            retention=config.gap_log.history_retention,
            limit=config.gap_log.history_limit,
        )
        self.hub = EventHub(capacity=config.events.buffer)
        self.gap_log = GapLogPublisher(
            client_kwargs=client_kwargs(config.kafka, suffix="-gaplog"),
            topic=config.gap_log.topic,
            group=group,
            instance=self.instance_id,
            max_pending=config.gap_log.max_pending,
            flush_timeout=config.gap_log.flush_timeout,
            local_gaps=lambda: list(self.store.values()),
        )
        self.fanout.subscribe(self.gap_log)
        self.fanout.subscribe(FleetFeed(self.fleet, group=group, instance=self.instance_id))
        self.gap_log_reader = GapLogReader(
            client_kwargs=client_kwargs(config.kafka, suffix="-gaplog-reader"),
            topic=config.gap_log.topic,
            group=group,
            fleet=self.fleet,
            hub=self.hub,
        )
        # Mirrored topics (docs/mirroring.md): the origin book answers /gaps and
        # names origins in pushed alerts; the rest exists only with a mirror_source configured.
        self.origins = OriginBook(
            aliases=config.mirror.aliases,
            policy=config.mirror.replication_policy,
            limit=config.gap_log.history_limit,
        )
        # Until the HTTP port is known (port 0), links use the configured port.
        external = config.alerting.external_url or default_external_url(config, config.http.port)
        self.alertmanager = build_alertmanager(
            config, instance=self.instance_id, external_url=external, origins=self.origins
        )
        if self.alertmanager is not None:
            self.fanout.subscribe(self.alertmanager)
            self.origins.subscribe(self.alertmanager.origin_decided)
        self.webhook = build_webhook(
            config, instance=self.instance_id, external_url=external, origins=self.origins
        )
        if self.webhook is not None:
            self.fanout.subscribe(self.webhook)
            self.origins.subscribe(self.webhook.origin_decided)
        self.mirror = build_mirror(
            config,
            origins=self.origins,
            fleet=self.fleet,
            partitions=self.partitions,
        )
        if self.mirror is not None:
            self.fanout.subscribe(self.mirror.attributor)
        self.checkpoints = CheckpointStore(
            client_kwargs=client_kwargs(config.kafka, suffix="-checkpoints"),
            topic=config.checkpoints.topic,
            group_id=config.watch.group_id,
            before_write=self.gap_log.flush,
        )
        # Rule 4 of the consumer loop: one lock for everything that touches trackers.
        lock = asyncio.Lock()
        self.reports: ReportReader | None = None
        on_assigned: list[Callable[[PartitionState], None]] = [self._on_assigned]
        # At topic granularity the topic counters count from each partition's restore here.
        topic_totals = TopicTotals() if config.http.metrics_granularity == "topic" else None
        if topic_totals is not None:
            on_assigned.append(topic_totals.note_assigned)
        self.durability = build_durability_audit(config)
        if config.reports.enabled:
            self.reports = ReportReader(
                client_kwargs=client_kwargs(config.kafka, suffix="-reports"),
                topic=config.reports.topic,
                lock=lock,
                partitions=self.partitions,
                fanout=self.fanout,
                health=self.health,
                writes=self.durability.writes if self.durability is not None else None,
            )
            on_assigned.append(self.reports.apply_cached)
        self.consumer = MonitorConsumer(
            config=with_canary_watched(config),
            client_kwargs=self._kwargs,
            partitions=self.partitions,
            fanout=self.fanout,
            store=self.store,
            checkpoints=self.checkpoints,
            health=self.health,
            lock=lock,
            on_assigned=on_assigned,
            on_restore_step=on_restore_step,
        )
        self.consumer_task: asyncio.Task[None] | None = None
        view = MonitorStatus(
            instance=self.instance_id,
            group_id=group,
            partitions=self.partitions,
            consumer=self.consumer,
            consumer_task=lambda: self.consumer_task,
        )
        self.registry = registry
        self._collector = MonitorCollector(
            self.partitions,
            self.health,
            is_up=self.consumer.is_up,
            # gapwatch_ready says what /readyz says (GapwatchNotReady alerts on it).
            is_ready=lambda: view.readiness()[0],
            topic_totals=topic_totals,
            fetch_session_resets=self.consumer.fetch_session_resets,
        )
        registry.register(self._collector)
        self._alerting_collector = AlertingCollector(
            sinks=self.sink_stats,
            publisher=self.gap_log,
            reader=self.gap_log_reader,
            fleet=self.fleet,
            hub=self.hub,
            firing_alerts=self.alertmanager.book.firing_count if self.alertmanager else None,
        )
        registry.register(self._alerting_collector)
        self._durability_collector: DurabilityCollector | None = None
        self._durability_task: asyncio.Task[None] | None = None
        if self.durability is not None:
            self._durability_collector = DurabilityCollector(self.durability)
            registry.register(self._durability_collector)
        self._canary_collector: CanaryCollector | None = None
        if self.canary is not None:
            self._canary_collector = CanaryCollector(self.canary, end_to_end=self._canary_latencies)
            registry.register(self._canary_collector)
        if self.mirror is not None:
            registry.register(self.mirror.collector)
        self.app = create_app(
            store=self.store,
            monitor=view,
            registry=registry,
            collector=self._collector,
            token=config.http.token,
            fleet=self.fleet,
            hub=self.hub,
            instance=self.instance_id,
            keepalive=config.events.keepalive,
            topics=self.durability.topics_json if self.durability is not None else None,
            origins=self.origins,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._server: uvicorn.Server | None = None
        self.http_port: int | None = None

    def sink_stats(self) -> list[SinkStats]:
        """The counters of every configured sink (for ``gapwatch_alert_*{sink}``)."""
        stats = list(self.alertmanager.stats) if self.alertmanager is not None else []
        if self.webhook is not None:
            stats.append(self.webhook.stats)
        return stats

    def _canary_latencies(self) -> PartitionLatencies:
        """End-to-end latency of each canary partition this monitor reads."""
        by_partition = self.partitions.latency_by_partition(self.config.canary.topic)
        return {p: (h.cumulative(), h.total) for p, h in by_partition.items()}

    def _on_assigned(self, state: PartitionState) -> None:
        """A partition is restored here: publish its open gaps as ours, take over the
        alerts of its lost gaps that are still within their hold."""
        self.gap_log.restate(state.tracker.gaps(), kind=ChangeKind.OWNED)
        if self.alertmanager is not None:
            lost = self.fleet.gaps_of(state.topic, state.partition, _LOSS_STATES)
            self.alertmanager.adopt(lost, time.time())

    async def start(self) -> None:
        """Check topics, connect, join the group and serve HTTP; returns once serving.

        Raises :class:`~gapwatch.errors.KafkaStartupError` (one line naming each server and
        why it failed, or the Kafka error by name) when the cluster cannot be used.
        """
        # Every client connects the same way, so the first to fail (the admin client,
        # checking topics) says why for all; later failures are explained the same way.
        async with explained_start(self._kwargs):
            await self._start_kafka_clients()
        server_config = http_server_config(self.app, self.config.http)
        self._server = _Server(server_config)
        self._tasks.append(asyncio.create_task(self._server.serve(), name="gapwatch-http"))
        async with asyncio.timeout(START_TIMEOUT):
            while not self._server.started:
                if self._tasks[-1].done():
                    self._tasks[-1].result()
                await asyncio.sleep(0.05)
        sockets = [s for server in self._server.servers for s in server.sockets]
        self.http_port = sockets[0].getsockname()[1] if sockets else self.config.http.port
        if self.config.alerting.external_url is None:
            set_external_url(
                default_external_url(self.config, self.http_port),
                alertmanager=self.alertmanager,
                webhook=self.webhook,
            )
        http = self.config.http
        log.info("gapwatch monitor serving on %s://%s:%s", http.scheme, http.host, self.http_port)

    async def _start_kafka_clients(self) -> None:
        await prepare_topics(self.config, time_limit=START_TIMEOUT)
        await self.gap_log.start()
        # The whole history first, so /gaps answers for the fleet from the start and
        # alerts of partitions assigned below can be taken over.
        await self.gap_log_reader.start(catch_up_timeout=START_TIMEOUT)
        self._tasks.append(
            asyncio.create_task(self.gap_log_reader.run(), name="gapwatch-gap-log-reader")
        )
        if self.alertmanager is not None:
            self.alertmanager.start()
        if self.webhook is not None:
            self.webhook.start()
        await self.checkpoints.start()
        if self.canary is not None:
            # Before the consumer subscribes: the canary creates its topic if missing.
            await self.canary.start()
        await self.consumer.start()
        self.consumer_task = asyncio.create_task(self.consumer.run(), name="gapwatch-consumer")
        self._tasks.append(self.consumer_task)
        if self.reports is not None:
            await self.reports.start()
            self._tasks.append(asyncio.create_task(self.reports.run(), name="gapwatch-reports"))
        if self.durability is not None:
            self._durability_task = asyncio.create_task(
                self.durability.run(), name="gapwatch-durability"
            )
            self._tasks.append(self._durability_task)
        if self.mirror is not None:
            await self.mirror.start()

    async def wait(self) -> None:
        """Until the consumer loop ends (stop requested, or it failed: then re-raise)."""
        assert self.consumer_task is not None
        await self.consumer_task

    async def stop(self) -> None:
        """Checkpoint and commit, leave the group, stop HTTP (each step even if one fails)."""
        self.consumer.request_stop()
        steps: list[Callable[[], Awaitable[None]]] = []
        if self.canary is not None:
            steps.append(self.canary.stop)
        steps += [self._join_consumer, self.consumer.stop]
        if self.reports is not None:
            steps.append(self.reports.stop)
        if self.durability is not None:
            steps.append(self._stop_durability)
        steps += [self.checkpoints.stop, self.gap_log.stop, self.gap_log_reader.stop]
        if self.alertmanager is not None:
            steps.append(self.alertmanager.stop)
        if self.webhook is not None:
            steps.append(self.webhook.stop)
        if self.mirror is not None:
            steps.append(self.mirror.stop)
        for step in steps:
            try:
                await step()
            except Exception:
                log.exception("shutdown step %s failed", getattr(step, "__name__", step))
        # Open /events streams end here, so uvicorn's graceful shutdown does not wait on them.
        self.hub.close()
        if self._server is not None:
            self._server.should_exit = True
        for task in self._tasks:
            if task is not self.consumer_task:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.registry.unregister(self._collector)
        self.registry.unregister(self._alerting_collector)
        if self._durability_collector is not None:
            self.registry.unregister(self._durability_collector)
        if self._canary_collector is not None:
            self.registry.unregister(self._canary_collector)
        if self.mirror is not None:
            self.registry.unregister(self.mirror.collector)

    async def _stop_durability(self) -> None:
        # The task first, so no audit is mid-request when its client closes.
        task = self._durability_task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert self.durability is not None
        await self.durability.stop()

    async def _join_consumer(self) -> None:
        if self.consumer_task is not None:
            async with asyncio.timeout(30.0):
                await asyncio.shield(self.consumer_task)


async def run_monitor(
    config: MonitorConfig, *, on_restore_step: Callable[[], None] = lambda: None
) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code."""
    monitor = RunningMonitor(config, on_restore_step=on_restore_step)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await monitor.start()
    except Exception:
        await monitor.stop()
        raise
    http = config.http
    print(f"gapwatch monitor: {http.scheme}://{http.host}:{monitor.http_port}/gaps", flush=True)
    waiter = asyncio.create_task(stop.wait())
    assert monitor.consumer_task is not None
    done, _ = await asyncio.wait(
        {waiter, monitor.consumer_task}, return_when=asyncio.FIRST_COMPLETED
    )
    waiter.cancel()
    failed = monitor.consumer_task in done and monitor.consumer_task.exception() is not None
    await monitor.stop()
    return 1 if failed else 0


def build_durability_audit(config: MonitorConfig) -> DurabilityAudit | None:
    """The durability audit of the watched topics, or ``None`` if it is turned off."""
    if not config.durability.is_enabled:
        return None
    reader = TopicFactsReader(
        client_kwargs(config.kafka, suffix="-durability"),
        principal=principal_of(config.kafka.security),
    )
    return DurabilityAudit(
        reader=reader,
        writes=ProducerWritesBook(),
        topics=config.watch.topics,
        topic_pattern=config.watch.topic_pattern,
        refresh=config.durability.refresh,
        timeout=DURABILITY_TIMEOUT,
    )


# --- mirrored topics: source readers, attributor, lag, metrics -----------------------


class MirrorParts:
    """What watching mirrored topics adds to a monitor, started and stopped together."""

    def __init__(
        self,
        *,
        sources: dict[str, ReaderPool],
        source_kwargs: dict[str, dict[str, object]],
        target: ReaderPool,
        attributor: MirrorAttributor,
        lag: MirrorLag,
        collector: MirrorCollector,
        table: MirrorTable,
    ) -> None:
        self.sources = sources
        self._source_kwargs = source_kwargs
        self.target = target
        self.attributor = attributor
        self.lag = lag
        self.collector = collector
        self._table = table
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start connecting to every source in the background (an unreachable source
        never stops the monitor: docs/mirroring.md), then the lookups and the lag rounds."""
        await self.target.start()
        for alias, pool in self.sources.items():
            self._tasks.append(
                asyncio.create_task(
                    keep_connecting(
                        alias,
                        pool,
                        client_kwargs=self._source_kwargs[alias],
                        table=self._table,
                        on_connected=functools.partial(self.attributor.source_connected, alias),
                    ),
                    name=f"gapwatch-mirror-connect-{alias}",
                )
            )
        self.attributor.start()
        self._tasks.append(asyncio.create_task(self.lag.run(), name="gapwatch-mirror-lag"))

    async def stop(self) -> None:
        """Stop the lookups, lag rounds and connection attempts, then disconnect."""
        await self.attributor.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for pool in (*self.sources.values(), self.target):
            try:
                await pool.stop()
            except Exception:
                log.exception("closing a mirror reader failed")


def build_mirror(
    config: MonitorConfig,
    *,
    origins: OriginBook,
    fleet: FleetStore,
    partitions: OwnedPartitions,
) -> MirrorParts | None:
    """The mirror components, or ``None`` when no ``mirror_source`` is configured."""
    mirror = config.mirror
    if not mirror.sources:
        return None
    source_kwargs: dict[str, dict[str, object]] = {
        source.alias: client_kwargs(
            KafkaSettings(
                bootstrap_servers=source.bootstrap_servers,
                client_id=f"{config.kafka.client_id}-mirror-{source.alias}",
                security=source.security,
            )
        )
        for source in mirror.sources
    }
    sources = {
        alias: ReaderPool(client_kwargs=kwargs, size=mirror.lookup_concurrency)
        for alias, kwargs in source_kwargs.items()
    }
    # One reader for duplicate lookups, one for lag rounds.
    target = ReaderPool(client_kwargs=client_kwargs(config.kafka, suffix="-mirror-target"), size=2)
    table = MirrorTable()
    for alias in sources:
        table.source_up[alias] = 0  # the series exist from the start, at 0 until connected
    attributor = MirrorAttributor(
        book=origins,
        table=table,
        sources=sources,
        target=target,
        fleet_gaps=fleet.gaps.values,
        fleet_version=lambda: fleet.applied,
        max_records=mirror.lookup_max_records,
        retries=mirror.lookup_retries,
        concurrency=mirror.lookup_concurrency,
    )

    def owned() -> list[tuple[str, int]]:
        return [(state.topic, state.partition) for state in partitions]

    lag = MirrorLag(
        book=origins,
        table=table,
        sources=sources,
        target=target,
        owned=owned,
        interval=mirror.lag_interval,
    )
    collector = MirrorCollector(
        table,
        book=origins,
        owned=owned,
        per_topic=config.http.metrics_granularity == "topic",
    )
    return MirrorParts(
        sources=sources,
        source_kwargs=source_kwargs,
        target=target,
        attributor=attributor,
        lag=lag,
        collector=collector,
        table=table,
    )


# --- alert sinks: built from the config; links point at this monitor's HTTP API -------


def delivery_settings(config: MonitorConfig) -> DeliverySettings:
    """The queue, timeout and retry settings every sink gets."""
    a = config.alerting
    return DeliverySettings(
        timeout=a.sink_timeout,
        max_retries=a.sink_max_retries,
        backoff_initial=a.sink_backoff_initial,
        backoff_max=a.sink_backoff_max,
        queue_size=a.sink_queue_size,
    )


def default_external_url(config: MonitorConfig, port: int) -> str:
    """The monitor's own URL when none is configured: a wildcard bind becomes the host name."""
    host = config.http.host
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"{config.http.scheme}://{host}:{port}"


def http_server_config(app: FastAPI, http: HttpSettings) -> uvicorn.Config:
    """How uvicorn serves the API: one worker in this loop, HTTPS if TLS is configured."""
    return uvicorn.Config(
        app,
        host=http.host,
        port=http.port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        ssl_certfile=None if http.tls_certfile is None else str(http.tls_certfile),
        ssl_keyfile=None if http.tls_keyfile is None else str(http.tls_keyfile),
    )


def build_alertmanager(
    config: MonitorConfig, *, instance: str, external_url: str, origins: OriginBook | None = None
) -> AlertmanagerSink | None:
    """The Alertmanager sink, or ``None`` if no Alertmanager URL is configured."""
    alerting = config.alerting
    if not alerting.alertmanager_urls:
        return None
    policy = AlertPolicy(
        loss_hold=alerting.loss_hold,
        repost_interval=alerting.repost_interval,
        max_per_partition=alerting.max_per_partition,
        duplicate_threshold=alerting.duplicate_threshold,
        duplicate_window=alerting.duplicate_window,
        duplicate_hold=alerting.duplicate_hold,
        external_url=external_url,
        instance=instance,
    )
    return AlertmanagerSink(
        urls=alerting.alertmanager_urls,
        book=AlertBook(policy, origins=origins),
        settings=delivery_settings(config),
    )


def build_webhook(
    config: MonitorConfig, *, instance: str, external_url: str, origins: OriginBook | None = None
) -> WebhookSink | None:
    """The webhook sink, or ``None`` if no webhook URL is configured."""
    alerting = config.alerting
    if alerting.webhook_url is None:
        return None
    return WebhookSink(
        url=alerting.webhook_url,
        secret=alerting.webhook_secret,
        kinds=alerting.webhook_events,
        group=config.watch.group_id,
        instance=instance,
        external_url=external_url,
        settings=delivery_settings(config),
        origins=origins,
    )


def set_external_url(
    url: str, *, alertmanager: AlertmanagerSink | None, webhook: WebhookSink | None
) -> None:
    """Point the links of both sinks (those configured) at ``url`` from now on."""
    if alertmanager is not None:
        alertmanager.book.link_to(url)
    if webhook is not None:
        webhook.external_url = url


# --- start-up: topics checked and created once, before anything else connects --------


async def prepare_topics(config: MonitorConfig, *, time_limit: float) -> None:
    """Check the ACLs and the watched topics and ensure gapwatch's own, all within
    ``time_limit`` seconds.

    Raises :class:`~gapwatch.errors.KafkaAuthorizationError` naming the first missing ACL
    (in the order of :func:`~gapwatch.kafka.acls.monitor_acls`), before any client that
    would meet it later, possibly in a retry loop, is started.
    """
    kwargs = client_kwargs(config.kafka, suffix="-admin")
    access = monitor_access(config)
    admin = AIOKafkaAdminClient(**kwargs)
    await admin.start()
    try:
        async with asyncio.timeout(time_limit):
            existing = await require_granted(kwargs, monitor_acls(access))
            if config.watch.topics:
                policies = await cleanup_policies(admin, config.watch.topics)
                refuse_compacted(policies, allow_compacted=config.watch.allow_compacted)
            missing = [t for t in access.owned_topics if t not in existing]
            try:
                await ensure_own_topics(admin, config, only=missing)
            except TopicCreationDeniedError as exc:
                create = Acl(access.principal, ResourceType.TOPIC, exc.topic, Operation.CREATE)
                raise KafkaAuthorizationError(
                    f"{denied_line(create)} (or create it as an admin: gapwatch acls --apply)"
                ) from exc
    finally:
        await admin.close()


def monitor_access(config: MonitorConfig) -> MonitorAccess:
    """What the monitor configured by ``config`` reads and writes, as its principal."""
    return MonitorAccess(
        principal=principal_of(config.kafka.security),
        group_id=config.watch.group_id,
        # With --canary the monitor reads the canary topic like a watched one.
        topics=with_canary_watched(config).watch.topics,
        checkpoint_topic=config.checkpoints.topic,
        gap_log_topic=config.gap_log.topic,
        report_topic=config.reports.topic if config.reports.enabled else None,
    )


async def ensure_own_topics(
    admin: AIOKafkaAdminClient, config: MonitorConfig, *, only: Collection[str]
) -> None:
    """Create those of the checkpoint, gap log and report topics in ``only`` that are
    missing, with the settings the monitor uses (``gapwatch acls --apply`` calls this as
    the admin)."""
    if config.checkpoints.topic in only:
        await ensure_topic(
            admin,
            config.checkpoints.topic,
            partitions=CHECKPOINT_TOPIC_PARTITIONS,
            configs=CHECKPOINT_TOPIC_CONFIGS,
        )
    if config.gap_log.topic in only:
        # One partition: one order of changes, and /events ids that are offsets.
        await ensure_topic(
            admin,
            config.gap_log.topic,
            partitions=1,
            configs=gap_log_topic_configs(config.gap_log.history_retention),
        )
    if config.reports.enabled and config.reports.topic in only:
        await ensure_report_topic(admin, config.reports.topic)
