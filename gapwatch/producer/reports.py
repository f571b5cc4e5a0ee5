"""Publishing producer reports to the control topic, isolated from the application's sends.

The publisher owns a second, small ``AIOKafkaProducer``: a report can then never wait
behind (or fill) the application's batches, and a problem with the control topic (not
authorised, not creatable, its partition offline) cannot fail or stall an application
send. Everything runs in one background task; every failure is logged and counted in
:class:`ReportStats` and the affected streams are reported
again next time. Nothing here ever raises into the application.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from gapwatch.core.model import ProducerReport
from gapwatch.core.report_codec import encode_report, encode_report_key
from gapwatch.kafka.acl_requests import topic_operations
from gapwatch.kafka.startup_errors import name_kafka_error
from gapwatch.producer.bookkeeping import DeliveryBook
from gapwatch.producer.config import ReportConfig, aiokafka_acks

log = logging.getLogger(__name__)

# Connection settings the report publisher shares with the application's producer.
CONNECTION_KWARGS = frozenset(
    (
        "bootstrap_servers",
        "client_id",
        "metadata_max_age_ms",
        "retry_backoff_ms",
        "security_protocol",
        "ssl_context",
        "connections_max_idle_ms",
        "sasl_mechanism",
        "sasl_plain_password",
        "sasl_plain_username",
        "sasl_kerberos_service_name",
        "sasl_kerberos_domain_name",
        "sasl_oauth_token_provider",
    )
)
_TOPIC_ALREADY_EXISTS = TopicAlreadyExistsError.errno


class ReportStats:
    """Counts of reports published and failed, by the topic the report is about.

    Written by :class:`ReportPublisher`, read by the metrics collector at scrape time.
    """

    __slots__ = ("failed", "published")

    def __init__(self) -> None:
        self.published: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()


class ReportPublisher:
    """Publishes one :class:`DeliveryBook`'s reports every interval and on stop."""

    def __init__(
        self,
        *,
        book: DeliveryBook,
        config: ReportConfig,
        connection: Mapping[str, Any],
        stats: ReportStats,
        acks_label: str,
        idempotence: bool | None = None,
        prepare: Callable[[], None] = lambda: None,
    ) -> None:
        self._book = book
        self._config = config
        self._connection = {k: v for k, v in connection.items() if k in CONNECTION_KWARGS}
        if "client_id" in self._connection:
            self._connection["client_id"] = f"{self._connection['client_id']}-gapwatch-reports"
        self._stats = stats
        self._acks_label = acks_label
        self._idempotence = idempotence
        self._prepare = prepare  # brings the book up to date before a report is taken
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._setup: asyncio.Task[bool] | None = None
        self._superseded = False
        self._topic_checked = False
        self._lock = asyncio.Lock()  # one publish at a time keeps reports of a key in order

    def start(self) -> None:
        """Start the background task; returns at once."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="gapwatch-producer-reports")

    async def stop(self, *, final: bool) -> None:
        """Stop periodic reports; publish the final report of every stream if ``final``."""
        task, self._task = self._task, None
        # A periodic publish cut short here is superseded by the final report.
        self._superseded = final
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            if final:
                try:
                    await asyncio.wait_for(self._publish_final(), self._config.timeout_s)
                except TimeoutError:
                    log.warning("gapwatch: final producer reports timed out")
            await self._finish_setup()
        finally:
            producer, self._producer = self._producer, None
            if producer is not None:
                await producer.stop()

    async def _publish_final(self) -> None:
        self._prepare()
        reports = self._book.take_reports(final=True)
        if not reports:
            return
        if not await asyncio.shield(self._setup_task()):
            self._count_failed(reports, "report publisher could not start")
            return
        await self._publish(reports)

    def _setup_task(self) -> asyncio.Task[bool]:
        # Connecting runs in its own task that stop() never cancels: aiokafka leaks the
        # bootstrap connection of a client cancelled while it connects.
        if self._setup is None or (self._setup.done() and not self._setup.result()):
            self._setup = asyncio.create_task(self._set_up(), name="gapwatch-reports-setup")
        return self._setup

    async def _set_up(self) -> bool:
        if not await self._start_producer():
            return False
        if self._config.create_topic and not self._topic_checked:
            if await self._topic_exists():
                self._topic_checked = True
            else:
                await self._ensure_topic()
        return True

    async def _topic_exists(self) -> bool:
        # Asked first because Kafka refuses CreateTopics for an existing topic too when
        # the producer lacks Create (TOPIC_AUTHORIZATION_FAILED): a least-privilege
        # producer, whose report topic an admin created, would warn at every start.
        assert self._producer is not None
        try:
            async with asyncio.timeout(self._config.timeout_s):
                found = await topic_operations(self._producer.client, [self._config.topic])
        except Exception:
            return False  # creating it says what is wrong
        return found.get(self._config.topic) is not None

    async def _finish_setup(self) -> None:
        setup = self._setup
        if setup is None or setup.done():
            return
        # Bounded: both clients in _set_up time out after timeout_s.
        done, _ = await asyncio.wait([setup], timeout=2 * self._config.timeout_s)
        if not done:
            log.warning("gapwatch: report publisher still connecting at stop; abandoning it")
            setup.cancel()

    async def _run(self) -> None:
        interval = self._config.interval_s
        ready = await asyncio.shield(self._setup_task())
        while not ready:
            # Keep retrying; the application's sends do not depend on this.
            await asyncio.sleep(interval)
            ready = await asyncio.shield(self._setup_task())
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.wait_for(self.publish_changed(), self._config.timeout_s)
            except TimeoutError:
                log.warning("gapwatch: publishing producer reports timed out")
            except Exception:  # never let the loop die; counted in publish_changed
                log.exception("gapwatch: unexpected error publishing producer reports")

    async def publish_changed(self) -> None:
        """Publish reports of the streams that changed since the last publish."""
        self._prepare()
        reports = self._book.take_reports()
        if reports:
            await self._publish(reports)

    async def _start_producer(self) -> bool:
        if self._producer is not None:
            return True
        producer = AIOKafkaProducer(
            **self._connection,
            acks=aiokafka_acks(self._config.acks),
            request_timeout_ms=int(self._config.timeout_s * 1000),
            linger_ms=5,
        )
        try:
            await producer.start()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await producer.stop()
            if not isinstance(exc, Exception):
                raise
            log.warning("gapwatch: cannot start the producer-report publisher: %r", exc)
            return False
        self._producer = producer
        return True

    async def _ensure_topic(self) -> None:
        config = self._config
        admin = AIOKafkaAdminClient(
            **{k: v for k, v in self._connection.items() if k != "client_id"},
            request_timeout_ms=int(config.timeout_s * 1000),
        )
        try:
            await admin.start()
            replication = config.topic_replication_factor
            if replication is None:
                assert self._producer is not None
                replication = max(1, min(3, len(self._producer.client.cluster.brokers())))
            response = await admin.create_topics(
                [
                    NewTopic(
                        config.topic,
                        num_partitions=config.topic_partitions,
                        replication_factor=replication,
                        topic_configs=dict(config.topic_configs),
                    )
                ]
            )
            # create_topics returns per-topic errors instead of raising them.
            for topic_error in response.topic_errors:
                code = topic_error[1]
                if code not in (0, _TOPIC_ALREADY_EXISTS):
                    log.warning(
                        "gapwatch: cannot create report topic %s (%s); relying on "
                        "the broker's auto-creation",
                        config.topic,
                        name_kafka_error(code),
                    )
            # Only a finished attempt counts: one cancelled by stop() is retried there.
            self._topic_checked = True
        except Exception as exc:
            self._topic_checked = True
            log.warning("gapwatch: cannot create report topic %s: %r", config.topic, exc)
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    async def _publish(self, reports: list[ProducerReport]) -> None:
        async with self._lock:
            producer = self._producer
            if producer is None:
                self._count_failed(reports, "report publisher not started")
                return
            sent_at_ms = int(time.time() * 1000)
            pending: list[tuple[ProducerReport, asyncio.Future[Any]]] = []
            try:
                for report in reports:
                    future = await producer.send(
                        self._config.topic,
                        encode_report(
                            report,
                            acks=self._acks_label,
                            idempotence=self._idempotence,
                            sent_at_ms=sent_at_ms,
                        ),
                        key=encode_report_key(report),
                    )
                    pending.append((report, future))
            except asyncio.CancelledError:
                if not self._superseded:
                    self._count_failed(reports[len(pending) :], "cancelled")
                raise
            except Exception as exc:
                self._count_failed(reports[len(pending) :], repr(exc))
            for i, (report, future) in enumerate(pending):
                try:
                    await future
                except asyncio.CancelledError:
                    if not self._superseded:
                        self._count_failed([r for r, _ in pending[i:]], "cancelled")
                    raise
                except Exception as exc:
                    self._count_failed([report], repr(exc))
                else:
                    self._stats.published[report.topic] += 1

    def _count_failed(self, reports: list[ProducerReport], why: str) -> None:
        if not reports:
            return
        log.warning("gapwatch: %d producer report(s) not published: %s", len(reports), why)
        for report in reports:
            self._stats.failed[report.topic] += 1
            # Report the stream again next time (a final report is not retried).
            if not report.final:
                self._book.mark_changed(report.topic, report.partition)
