"""When the log is not where the monitor left it: retention, truncation, leader changes.

The consumer loop asks this module twice: after an out-of-range fetch and at every leader
check.

Rules (rule 1 and 3 of :mod:`gapwatch.monitor.ingest.consumer`):

1. **Below the log start** (out-of-range fetch): retention deleted offsets before the
   monitor read them. Reported as ``RecordsSkipped`` (never loss); the tracker takes the
   fact (rule R16: each stream's next record is a new baseline, gaps open at the skip
   cannot become loss) and reading resumes at the log start. No silent offset reset.
2. **Above the log end** (out-of-range fetch): the log was truncated after the monitor
   read it, because an out-of-sync replica became leader (an unclean election). The log
   is re-read and compared with the tracker's ring (below):
   the already-read sequences that are gone become ``truncated`` gaps and reading
   resumes at the divergence point.
3. **Leader changes** are counted per partition (``gapwatch_leader_changes_total``,
   ``/streams``) and logged; after each, the log is verified the same way, so a
   truncation is found even when producers already appended to the new leader and its
   log end is above the read position. A failed check is retried at the next one. A
   pass reads for at most :data:`CHECK_BUDGET` (at least one partition); the partitions
   left are checked at the next passes, a second apart, and are read meanwhile, as after
   a failed check: at thousands of restored partitions (each needs one check) a single
   pass held the consumer's lock for over a minute.

aiokafka's metadata exposes leader ids but not leader epochs, so leader ids are compared.

**Finding the divergence.**
An unclean election makes an out-of-sync replica the leader: records the monitor already
read may be gone, and producers may already have appended new records at those offsets,
so the log end alone (even when it is above the read position) does not tell where the
logs parted. Replicas agree on a prefix, so the first offset whose record differs from
what the tracker read is the divergence point (the rule is
:meth:`gapwatch.core.ring.Ring.find_divergence`).
How much is re-read:

1. **Probe.** The newest record the ring holds below ``checked_position`` (the read
   position at the previous leader check, so it was certainly read from the previous
   leader) and everything after it up to the read position: normally about a second of
   records. If the probe record is unchanged, only the records after it can differ.
2. **Full.** If the probe differs (or there is none), from the ring's oldest offset (or
   the new log start, if retention removed more): at most ``ring_size`` records.

Everything the ring holds at and after the divergence point is reported ``truncated``,
and the monitor's consumer is sought back to it, so the records now in the log there are
read as new. A divergence at the ring's oldest record is flagged ``beyond_ring``: it may
go deeper than the ring can tell. The reader is a throwaway consumer without a group,
with the monitor's isolation level, so it sees the same records the monitor reads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, OffsetOutOfRangeError

from gapwatch.core.events import Event
from gapwatch.core.wire import Stamp, parse_stamp
from gapwatch.errors import MalformedStampError
from gapwatch.kafka.aiokafka_consumer import partition_leader
from gapwatch.monitor.state.partitions import OwnedPartitions, PartitionState

log = logging.getLogger(__name__)

READ_TIMEOUT = 30.0
# Records per fetch while re-reading; more than the ring can hold is never needed.
READ_BATCH = 2000


class LogReader:
    """Reads one partition's records between two offsets, outside the consumer group."""

    def __init__(self, *, client_kwargs: Mapping[str, Any], isolation_level: str) -> None:
        self._kwargs = dict(client_kwargs)
        self._isolation_level = isolation_level
        self._consumer: AIOKafkaConsumer | None = None

    async def _reader(self) -> AIOKafkaConsumer:
        # Started on first need: most monitors never see a leader change.
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                **self._kwargs,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="none",
                isolation_level=self._isolation_level,
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def stop(self) -> None:
        """Close the reader if it was started."""
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()

    async def read(
        self, tp: TopicPartition, start: int, stop: int
    ) -> list[tuple[int, Stamp | None]]:
        """(offset, stamp) of every record at ``start <= offset < stop`` (``None``:
        unstamped or malformed, which the ring never holds)."""
        if stop <= start:
            return []
        reader = await self._reader()
        out: list[tuple[int, Stamp | None]] = []
        async with asyncio.timeout(READ_TIMEOUT):
            reader.assign([tp])
            reader.seek(tp, start)
            position = start
            while position < stop:
                batches = await reader.getmany(tp, timeout_ms=500, max_records=READ_BATCH)
                for record in batches.get(tp, []):
                    if record.offset >= stop:
                        break
                    out.append((record.offset, _stamp(record.headers)))
                position = await reader.position(tp)
        return out


def _stamp(headers: Any) -> Stamp | None:
    try:
        return parse_stamp(headers)
    except MalformedStampError:
        return None


async def find_divergence(
    reader: LogReader,
    state: PartitionState,
    *,
    log_start: int,
    log_end: int,
    now: float,
) -> tuple[list[Event], int | None]:
    """Compare the log with what ``state``'s tracker read (module docstring).

    Returns the truncation events and the offset to resume reading at (``None``: the log
    holds everything that was read, keep reading where the consumer is).
    """
    tracker = state.tracker
    tp = TopicPartition(state.topic, state.partition)
    position = state.position if state.position is not None else log_end
    stop = min(position, log_end)
    probe = tracker.newest_read(state.checked_position)
    found: tuple[int, bool] | None = None
    probed = False
    if probe is not None and log_start <= probe[0] < stop:
        records = await reader.read(tp, probe[0], stop)
        if records and records[0] == probe:
            probed = True
            found = tracker.find_divergence(records, log_start=probe[0], log_end=log_end)
    if not probed:
        start = tracker.verify_from()
        if start is None:
            # Nothing stamped to compare: only the end can tell (offsets, no sequences).
            if log_end < position:
                return list(tracker.log_truncated(log_end, now)), log_end
            return [], None
        start = max(start, log_start)
        records = await reader.read(tp, start, stop)
        found = tracker.find_divergence(records, log_start=start, log_end=log_end)
    if found is None:
        return [], (log_end if log_end < position else None)
    offset, beyond_ring = found
    events = list(tracker.log_diverged_at(offset, now, beyond_ring=beyond_ring))
    log.error(
        "%s: the log diverged at offset %d from what was read (up to %d; leader %s): "
        "records already read are gone: an out-of-sync replica became leader "
        "(an unclean leader election)%s",
        tp,
        offset,
        position,
        state.leader,
        ", possibly more than the truncation ring holds" if beyond_ring else "",
    )
    return events, offset


log = logging.getLogger(__name__)

ADMIN_TIMEOUT = 30.0
# Time one pass of log checks may spend reading logs (at least one partition per pass).
CHECK_BUDGET = 0.25
# Due partitions whose log offsets one pass asks for (more than a pass checks in its budget).
CHECK_CHUNK = 200
# The leader walk yields to the loop when a step took longer than this (checked every
# WALK_STRIDE partitions).
WALK_STEP_BUDGET = 0.002
WALK_STRIDE = 128


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
            events.extend(state.tracker.records_skipped(fetch_offset, start - 1, now))
            log.warning("%s: offsets %d..%d deleted before read", tp, fetch_offset, start - 1)
            consumer.seek(tp, start)
            state.note_deleted_unread(start - fetch_offset, resume_at=start)
        elif fetch_offset > end:
            state.seek(fetch_offset)
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
            state.note_truncated(resume_at=resume)
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
    changed: list[PartitionState] = []
    step_started = time.perf_counter()
    for i, state in enumerate(partitions):
        if i % WALK_STRIDE == 0 and time.perf_counter() - step_started > WALK_STEP_BUDGET:
            # Thousands of partitions are walked every second: let the loop breathe.
            await asyncio.sleep(0)
            step_started = time.perf_counter()
        leader = partition_leader(consumer, TopicPartition(state.topic, state.partition))
        if leader is None or leader < 0:
            continue
        if state.leader is not None and leader != state.leader:
            log.warning(
                "%s/%d: leader changed from broker %d to %d; verifying the log",
                state.topic,
                state.partition,
                state.leader,
                leader,
            )
        if state.note_leader(leader):
            changed.append(state)
    if not changed:
        return []
    # Offsets only for the partitions one pass can check; the others stay due. Asking for
    # every due partition (5,000 after a restore) cost a ListOffsets pair over all of them
    # at every pass until the last was checked, each a stall of the event loop.
    changed = changed[:CHECK_CHUNK]
    tps = [TopicPartition(s.topic, s.partition) for s in changed]
    events: list[Event] = []
    started = time.perf_counter()
    try:
        async with asyncio.timeout(ADMIN_TIMEOUT):
            starts = await consumer.beginning_offsets(tps)
            ends = await consumer.end_offsets(tps)
        for state, tp in zip(changed, tps, strict=True):
            if time.perf_counter() - started > CHECK_BUDGET:
                # The others stay due (note_leader says so again) and are checked at the
                # next passes: every partition restored from a checkpoint needs one read,
                # and 5,000 of them in one pass, under the consumer's lock, stopped reading
                # for longer than a minute after start-up.
                break
            found, resume = await find_divergence(
                reader, state, log_start=starts[tp], log_end=ends[tp], now=clock()
            )
            events.extend(found)
            if resume is not None:
                consumer.seek(tp, resume)
            state.note_verified(resume_at=resume)
    except (KafkaError, TimeoutError):
        log.warning("log check after a leader change failed; retrying at the next check")
    return events
