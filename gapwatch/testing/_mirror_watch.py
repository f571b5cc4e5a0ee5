"""Watching MirrorMaker from outside: is it copying now, and has it copied a topic's tail?

"Copying" is proven with probe records: a fresh nonce is written to the source's
:data:`PROBE_TOPIC` about once a second until one of them shows up in its mirror on the
target. Fresh ones keep coming because a MirrorMaker that starts at ``latest`` skips
whatever was written before its consumer got its position. Probes never touch the topics a
test watches.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from gapwatch.testing import _admin
from gapwatch.testing._errors import MirrorError, TopicError
from gapwatch.testing._mirror_admin import topic_exists
from gapwatch.testing._mirror_config import PROBE_TOPIC, MirrorSettings

_PROBE_EVERY_S = 1.0
_PROBE_PREFIX = b"gapwatch-mirror-probe "


@dataclass(frozen=True, slots=True)
class RecordFingerprint:
    """What MirrorMaker keeps of a record: partition, timestamp, key, value and headers."""

    partition: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


async def ensure_probe_topic(source_bootstrap: str) -> None:
    """Create the one-partition probe topic on the source unless it exists."""
    if await topic_exists(source_bootstrap, PROBE_TOPIC):
        return
    try:
        await _admin.create_topic(
            source_bootstrap,
            PROBE_TOPIC,
            partitions=1,
            replication_factor=1,
            configs=None,
            timeout_s=30.0,
        )
    except TopicError as exc:
        if "TopicAlreadyExists" not in str(exc):  # another mirror created it meanwhile
            raise


async def wait_copying(
    settings: MirrorSettings, *, timeout_s: float, failure: Callable[[], str | None]
) -> float:
    """Write probes until one arrives on the target; the seconds that took.

    :class:`MirrorError` as soon as ``failure()`` names a reason to give up (MirrorMaker
    exited, or refused its configuration), or after ``timeout_s``.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    await ensure_probe_topic(settings.source_bootstrap)
    remote = settings.remote_topic(PROBE_TOPIC)
    sent: set[bytes] = set()
    producer = AIOKafkaProducer(bootstrap_servers=settings.source_bootstrap, acks="all")
    await producer.start()
    consumer: AIOKafkaConsumer | None = None
    seen = "the mirrored probe topic does not exist on the target yet"
    try:
        next_probe = 0.0
        while True:
            reason = failure()
            if reason is not None:
                raise MirrorError(f"{reason} while waiting for it to copy ({seen})")
            now = time.monotonic()
            if now >= deadline:
                raise MirrorError(
                    f"MirrorMaker copied none of {len(sent)} probe records from "
                    f"{PROBE_TOPIC!r} to {remote!r} within {timeout_s:.0f} s ({seen})"
                )
            if now >= next_probe:
                nonce = _PROBE_PREFIX + secrets.token_hex(8).encode()
                await producer.send_and_wait(PROBE_TOPIC, nonce, partition=0)
                sent.add(nonce)
                next_probe = now + _PROBE_EVERY_S
            if consumer is None:
                if await topic_exists(settings.target_bootstrap, remote):
                    consumer = await _open_from_beginning(settings.target_bootstrap, remote)
                    seen = "the mirrored probe topic exists, no new probe in it yet"
                else:
                    await asyncio.sleep(0.2)
                continue
            batches = await consumer.getmany(timeout_ms=300)
            for records in batches.values():
                if any(record.value in sent for record in records):
                    return time.monotonic() - started
    finally:
        await producer.stop()
        if consumer is not None:
            await consumer.stop()


async def _open_from_beginning(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    consumer.assign([TopicPartition(topic, 0)])
    await consumer.seek_to_beginning(TopicPartition(topic, 0))
    return consumer


async def last_records(
    bootstrap: str, topic: str, partitions: set[int]
) -> dict[int, RecordFingerprint | None]:
    """The newest record of each of ``partitions`` (``None`` where a partition is empty)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        newest: dict[int, RecordFingerprint | None] = {}
        for tp in tps:
            if ends[tp] <= starts[tp]:
                newest[tp.partition] = None
                continue
            consumer.seek(tp, ends[tp] - 1)
            batch = await consumer.getmany(tp, timeout_ms=10_000)
            records = batch.get(tp, [])
            if not records:
                raise TopicError(f"could not read the newest record of {tp.topic}-{tp.partition}")
            record = records[0]
            newest[tp.partition] = RecordFingerprint(
                record.partition,
                record.timestamp,
                record.key,
                record.value,
                tuple((name, bytes(value)) for name, value in record.headers),
            )
        return newest
    finally:
        await consumer.stop()


async def wait_caught_up(
    settings: MirrorSettings, topic: str, *, timeout_s: float, failure: Callable[[], str | None]
) -> None:
    """Wait until the newest record of every non-empty partition of source ``topic`` is the
    newest record of the same partition of its mirror on the target.

    MirrorMaker copies each partition in order, so everything it was going to copy up to
    that record has then arrived. :class:`MirrorError` once ``failure()`` names a reason, or
    when time runs out.
    """
    deadline = time.monotonic() + timeout_s
    remote = settings.remote_topic(topic)
    partitions = await _admin.topic_partitions(settings.source_bootstrap, topic)
    wanted = await last_records(settings.source_bootstrap, topic, partitions)
    wanted_tail = {p: r for p, r in wanted.items() if r is not None}
    behind = sorted(wanted_tail)
    while behind:
        reason = failure()
        if reason is not None:
            raise MirrorError(f"{reason} while {remote} was behind on partitions {behind}")
        if time.monotonic() >= deadline:
            raise MirrorError(
                f"{remote} partitions {behind} did not end with the source's newest record "
                f"within {timeout_s:.0f} s"
            )
        try:
            if await topic_exists(settings.target_bootstrap, remote):
                have = await last_records(settings.target_bootstrap, remote, set(wanted_tail))
                behind = sorted(p for p, r in wanted_tail.items() if have.get(p) != r)
        except (KafkaError, TopicError):
            pass  # the mirrored topic is still being created: ask again
        if behind:
            await asyncio.sleep(0.5)
