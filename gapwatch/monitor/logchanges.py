"""When the log is not where the monitor left it: retention, truncation, leader changes.

Rules (rule 1 and 3 of :mod:`gapwatch.monitor.consumer`):

1. **Below the log start** (out-of-range fetch): retention deleted offsets before the
   monitor read them. Reported as ``RecordsSkipped`` (never loss); the tracker takes the
   fact (rule R16: each stream's next record is a new baseline, gaps open at the skip
   cannot become loss) and reading resumes at the log start. No silent offset reset.
2. **Above the log end** (out-of-range fetch): the log was truncated after the monitor
   read it, because an out-of-sync replica became leader (an unclean election). The log
   is re-read and compared with the tracker's ring (:mod:`gapwatch.monitor.logverify`):
   the already-read sequences that are gone become ``truncated`` gaps and reading
   resumes at the divergence point.
3. **Leader changes** are counted per partition (``gapwatch_leader_changes_total``,
   ``/streams``) and logged; after each, the log is verified the same way, so a
   truncation is found even when producers already appended to the new leader and its
   log end is above the read position. A failed check is retried at the next one.

aiokafka's metadata exposes leader ids but not leader epochs, so leader ids are compared.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, OffsetOutOfRangeError

from gapwatch.core.events import Event
from gapwatch.monitor.logverify import LogReader, find_divergence
from gapwatch.monitor.partitions import OwnedPartitions, PartitionState

log = logging.getLogger(__name__)

ADMIN_TIMEOUT = 30.0


async def recover_out_of_range(
    consumer: AIOKafkaConsumer,
    reader: LogReader,
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
            state.skipped += start - fetch_offset
            events.extend(state.tracker.records_skipped(fetch_offset, start - 1, now))
            log.warning("%s: offsets %d..%d deleted before read", tp, fetch_offset, start - 1)
            consumer.seek(tp, start)
            state.position = start
        elif fetch_offset > end:
            state.position = fetch_offset
            found, resume = await find_divergence(
                reader, state, log_start=start, log_end=end, now=now
            )
            events.extend(found)
            resume = end if resume is None else resume
            log.error(
                "%s: log truncated from %d to %d (leader %s), resuming at %d: an "
                "out-of-sync replica became leader (an unclean leader election)",
                tp,
                fetch_offset,
                end,
                state.leader,
                resume,
            )
            consumer.seek(tp, resume)
            state.position = state.checked_position = resume
        else:
            consumer.seek(tp, fetch_offset)
    return events


async def check_leaders(
    consumer: AIOKafkaConsumer,
    reader: LogReader,
    partitions: OwnedPartitions,
    clock: Callable[[], float],
) -> list[Event]:
    """Rule 3: note leader changes and verify the log behind each one."""
    # aiokafka has no public accessor for partition leaders; its client's cluster
    # metadata is what the fetcher itself routes by.
    cluster = consumer._client.cluster
    changed: list[PartitionState] = []
    for state in partitions:
        leader = cluster.leader_for_partition(TopicPartition(state.topic, state.partition))
        if leader is None or leader < 0:
            continue
        if leader == state.leader or state.leader is None:
            state.leader = leader
            if not state.needs_verify:
                # Everything read so far came from this leader (the fetcher routes by
                # the same metadata), so a later check may trust it.
                state.checked_position = state.position
                continue
        else:
            state.leader_changes += 1
            log.warning(
                "%s/%d: leader changed from broker %d to %d; verifying the log",
                state.topic,
                state.partition,
                state.leader,
                leader,
            )
            state.leader = leader
            state.needs_verify = True
        changed.append(state)
    if not changed:
        return []
    tps = [TopicPartition(s.topic, s.partition) for s in changed]
    events: list[Event] = []
    try:
        async with asyncio.timeout(ADMIN_TIMEOUT):
            starts = await consumer.beginning_offsets(tps)
            ends = await consumer.end_offsets(tps)
        for state, tp in zip(changed, tps, strict=True):
            found, resume = await find_divergence(
                reader, state, log_start=starts[tp], log_end=ends[tp], now=clock()
            )
            events.extend(found)
            if resume is not None:
                consumer.seek(tp, resume)
                state.position = resume
            state.needs_verify = False
            state.checked_position = state.position
    except (KafkaError, TimeoutError):
        log.warning("log check after a leader change failed; retrying at the next check")
    return events
