"""When the log is not where the monitor left it: retention, truncation, leader changes.

Rules (rule 1 and 3 of :mod:`gapwatch.monitor.consumer`):

1. **Below the log start** (out-of-range fetch): retention deleted offsets before the
   monitor read them. Reported as ``RecordsSkipped`` (never loss), the tracker is told,
   and reading resumes at the log start. No silent offset reset.
2. **Above the log end** (out-of-range fetch): the log was truncated after the monitor
   read it, because an out-of-sync replica became leader (an unclean election). The
   tracker's ring names the already-read sequences that are gone (``truncated`` gaps);
   reading resumes at the new end.
3. **Leader changes** are counted per partition (``gapwatch_leader_changes_total``,
   ``/streams``) and logged; after each, the new leader's log end is compared with the
   read position, so a truncation is found even when the next fetch would succeed
   (records written after the election can refill the offsets already read).

aiokafka's metadata exposes leader ids but not leader epochs, so leader ids are compared.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, OffsetOutOfRangeError

from gapwatch.core.model import Event, RecordsSkipped
from gapwatch.monitor.partitions import OwnedPartitions, PartitionState
from gapwatch.monitor.tracking import skip_records

log = logging.getLogger(__name__)

ADMIN_TIMEOUT = 30.0


async def recover_out_of_range(
    consumer: AIOKafkaConsumer,
    partitions: OwnedPartitions,
    exc: OffsetOutOfRangeError,
    now: float,
) -> list[Event]:
    """Rules 1 and 2 for every partition of an out-of-range fetch; seeks each one."""
    fetch_offsets: dict[TopicPartition, int] = exc.args[0] if exc.args else {}
    events: list[Event] = []
    for tp, fetch_offset in fetch_offsets.items():
        state = partitions.get(tp.topic, tp.partition)
        if state is None:
            continue
        async with asyncio.timeout(ADMIN_TIMEOUT):
            start = (await consumer.beginning_offsets([tp]))[tp]
            end = (await consumer.end_offsets([tp]))[tp]
        if fetch_offset < start:
            count = start - fetch_offset
            state.skipped += count
            events.append(
                RecordsSkipped(tp.topic, tp.partition, fetch_offset, start - 1, count, now)
            )
            events.extend(skip_records(state.tracker, fetch_offset, start - 1, now))
            log.warning("%s: offsets %d..%d deleted before read", tp, fetch_offset, start - 1)
            consumer.seek(tp, start)
        elif fetch_offset > end:
            events.extend(state.tracker.log_truncated(end, now))
            log.error(
                "%s: log truncated from %d to %d (leader %s): records already read are "
                "gone, an out-of-sync replica became leader",
                tp,
                fetch_offset,
                end,
                state.leader,
            )
            consumer.seek(tp, end)
            state.position = end
        else:
            consumer.seek(tp, fetch_offset)
    return events


async def check_leaders(
    consumer: AIOKafkaConsumer, partitions: OwnedPartitions, clock: Callable[[], float]
) -> list[Event]:
    """Rule 3: note leader changes and look for a truncation behind each one."""
    # aiokafka has no public accessor for partition leaders; its client's cluster
    # metadata is what the fetcher itself routes by.
    cluster = consumer._client.cluster
    changed: list[PartitionState] = []
    for state in partitions:
        leader = cluster.leader_for_partition(TopicPartition(state.topic, state.partition))
        if leader is None or leader < 0 or leader == state.leader:
            continue
        if state.leader is not None:
            changed.append(state)
            state.leader_changes += 1
            log.warning(
                "%s/%d: leader changed from broker %d to %d; checking for a truncation",
                state.topic,
                state.partition,
                state.leader,
                leader,
            )
        state.leader = leader
    if not changed:
        return []
    tps = [TopicPartition(s.topic, s.partition) for s in changed]
    try:
        async with asyncio.timeout(ADMIN_TIMEOUT):
            ends = await consumer.end_offsets(tps)
    except (KafkaError, TimeoutError):
        log.warning("truncation check after a leader change failed; the next fetch will tell")
        return []
    now = clock()
    events: list[Event] = []
    for state, tp in zip(changed, tps, strict=True):
        end = ends[tp]
        if state.position is not None and end < state.position:
            events.extend(state.tracker.log_truncated(end, now))
            log.error(
                "%s: new leader %s's log ends at %d, below %d already read: records were "
                "lost by an unclean leader election",
                tp,
                state.leader,
                end,
                state.position,
            )
            consumer.seek(tp, end)
            state.position = end
    return events
