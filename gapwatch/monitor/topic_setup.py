"""Preparing the topics a monitor needs, once, before it connects anything else.

Refuses compacted watched topics (unless allowed) and ensures the checkpoint, gap log and
producer report topics, all through one short-lived admin client and within one timeout:
a monitor must fail loudly at start, not hang. The admin calls live in :mod:`.topics`.
"""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient

from gapwatch.alerting.gaplog import gap_log_topic_configs
from gapwatch.monitor.config import MonitorConfig
from gapwatch.monitor.kafka_clients import client_kwargs
from gapwatch.monitor.reports import ensure_report_topic
from gapwatch.monitor.topics import (
    CHECKPOINT_TOPIC_CONFIGS,
    CHECKPOINT_TOPIC_PARTITIONS,
    cleanup_policies,
    ensure_topic,
    refuse_compacted,
)


async def prepare_topics(config: MonitorConfig, *, time_limit: float) -> None:
    """Check the watched topics and ensure gapwatch's own, all within ``time_limit`` seconds."""
    admin = AIOKafkaAdminClient(**client_kwargs(config.kafka, suffix="-admin"))
    await admin.start()
    try:
        async with asyncio.timeout(time_limit):
            if config.watch.topics:
                policies = await cleanup_policies(admin, config.watch.topics)
                refuse_compacted(policies, allow_compacted=config.watch.allow_compacted)
            await ensure_topic(
                admin,
                config.checkpoints.topic,
                partitions=CHECKPOINT_TOPIC_PARTITIONS,
                configs=CHECKPOINT_TOPIC_CONFIGS,
            )
            # One partition: one order of changes, and /events ids that are offsets.
            await ensure_topic(
                admin,
                config.gap_log.topic,
                partitions=1,
                configs=gap_log_topic_configs(config.gap_log.history_retention),
            )
            if config.reports.enabled:
                await ensure_report_topic(admin, config.reports.topic)
    finally:
        await admin.close()
