"""Checkpoints the monitor cannot use or cannot write: it keeps going, exactly and counted."""

from __future__ import annotations

import asyncio
import os
import time

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from monitor_support import (
    get_json,
    metric_value,
    monitor_config,
    send_stamped,
    start_monitor,
    wait_for_position,
)

from gapwatch.kafka.checkpoints import Checkpoint, CheckpointStore, encode_key, encode_value
from gapwatch.kafka.topics import (
    CHECKPOINT_TOPIC_CONFIGS,
    CHECKPOINT_TOPIC_PARTITIONS,
    ensure_topic,
)
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.kafka


async def test_unreadable_snapshot_resumes_at_its_offset_with_new_baselines(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    """A checkpoint whose snapshot this version cannot read (here: a future format
    version) neither crashes the monitor nor re-reads or skips records: the partition
    starts fresh at the checkpoint's offset, streams take new baselines (no false gap),
    and the failure is counted."""
    topic = await make_topic(partitions=1)
    bootstrap = kafka.bootstrap_servers
    config = monitor_config(bootstrap, [topic], f"g-{topic}")
    await send_stamped(bootstrap, topic, 0, range(30))
    first = await start_monitor(config)
    try:
        await wait_for_position(first, 30)
    finally:
        await first.stop()  # checkpoint at offset 30, committed
    # A newer checkpoint of the same key after the committed one wins on restore (an
    # instance that died between writing and committing); make it unreadable.
    client = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await client.start()
    try:
        value = encode_value(Checkpoint(30, time.time(), b"GWT\x09not a snapshot we know"))
        await client.send_and_wait(
            config.checkpoints.topic, value, key=encode_key(config.watch.group_id, topic, 0)
        )
    finally:
        await client.stop()
    await send_stamped(bootstrap, topic, 0, range(30, 40))

    second = await start_monitor(config)
    try:
        await wait_for_position(second, 40)
        await asyncio.sleep(2.0)  # past the 1 s grace: a false gap would be confirmed now
        gaps = (await get_json(second, "/gaps", scope="local"))["gaps"]
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{second.http_port}/metrics")).text
    finally:
        await second.stop()
    assert gaps == []
    labels = {"topic": topic, "partition": "0"}
    assert metric_value(text, "gapwatch_records_total", **labels) == 10  # 30..39 only
    assert metric_value(text, "gapwatch_duplicate_records_total", **labels) == 0
    assert metric_value(text, "gapwatch_checkpoint_restore_failures_total") == 1


async def test_checkpoint_store_writes_above_kafka_default_and_leaves_out_too_large(
    kafka: KafkaCluster, make_topic: MakeTopic
) -> None:
    """A 1.2 MB incompressible checkpoint (above Kafka's 1 MB default) is written and read
    back through a topic created with gapwatch's settings; one above the store's limit
    is left out of the result without failing the others."""
    topic = f"checkpoints-{os.urandom(4).hex()}"
    bootstrap = kafka.bootstrap_servers
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        created = await ensure_topic(
            admin, topic, partitions=CHECKPOINT_TOPIC_PARTITIONS, configs=CHECKPOINT_TOPIC_CONFIGS
        )
    finally:
        await admin.close()
    assert created
    store = CheckpointStore(
        client_kwargs={"bootstrap_servers": bootstrap},
        topic=topic,
        group_id="g",
        max_bytes=1_500_000,
    )
    await store.start()
    try:
        big = Checkpoint(7, time.time(), os.urandom(1_200_000))
        too_big = Checkpoint(9, time.time(), os.urandom(1_600_000))
        pointers = await store.write({("t", 0): big, ("t", 1): too_big})
        assert set(pointers) == {("t", 0)}
        loaded = await store.load(pointers)
        # Between loads the reader holds nothing (its fetcher would buffer the
        # checkpoint partitions until the next load), and a later load reads again.
        assert not store.is_reading()
        newer = Checkpoint(8, time.time(), os.urandom(1_000))
        newer_pointers = await store.write({("t", 0): newer})
        reloaded = await store.load(newer_pointers)
        assert not store.is_reading()
    finally:
        await store.stop()
    assert loaded[("t", 0)] == big
    assert reloaded[("t", 0)] == newer
