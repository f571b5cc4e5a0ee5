"""Building the alert sinks (Alertmanager, webhook) that a monitor config asks for.

Only construction lives here: the composition root subscribes the sinks to the event
fan-out, starts and stops them. Links in alerts point at the monitor's own HTTP API, whose
address is only known once it serves (port 0), hence :func:`set_external_url`.
"""

from __future__ import annotations

import dataclasses
import socket

from gapwatch.alerting.alertbook import AlertBook, AlertPolicy
from gapwatch.alerting.alertmanager import AlertmanagerSink
from gapwatch.alerting.delivery import DeliverySettings
from gapwatch.alerting.webhook import WebhookSink
from gapwatch.monitor.config import MonitorConfig


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
    return f"http://{host}:{port}"


def build_alertmanager(
    config: MonitorConfig, *, instance: str, external_url: str
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
        book=AlertBook(policy),
        settings=delivery_settings(config),
    )


def build_webhook(config: MonitorConfig, *, instance: str, external_url: str) -> WebhookSink | None:
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
    )


def set_external_url(
    url: str, *, alertmanager: AlertmanagerSink | None, webhook: WebhookSink | None
) -> None:
    """Point the links of both sinks (those configured) at ``url`` from now on."""
    if alertmanager is not None:
        book = alertmanager.book
        book.policy = dataclasses.replace(book.policy, external_url=url)
    if webhook is not None:
        webhook.external_url = url
