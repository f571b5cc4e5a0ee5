"""Micro-benchmark of the sequence tracker (a script, not a test).

1. In-order ``PartitionTracker.observe()`` cost per record, against a bare ``dict`` update
   over the same records measured in the same run (ratio and microseconds per record).
2. Memory per tracked stream with 100,000 streams on one partition (tracemalloc), for
   streams seen from their first record and for streams first seen mid-way.
3. The fixed cost of a full truncation ring, and of a checkpoint (snapshot/restore) of a
   partition whose ring is full.

Run on one core: ``.venv/bin/python bench/bench_tracker.py`` (pins itself to CPU 0).
Targets (issue 3): <= 0.5 us per in-order record, <= 300 bytes per stream.
"""

from __future__ import annotations

import gc
import os
import time
import tracemalloc
from collections.abc import Callable

from gapwatch.core.config import TrackerConfig
from gapwatch.core.tracker import PartitionTracker
from gapwatch.core.wire import Stamp

RECORDS = 1_000_000
PRODUCERS = 16
REPEATS = 5
STREAMS = 100_000
BASE_OFFSET = 5_000_000_000  # realistic offsets are large ints, not small cached ones
BASE_TS = 1_700_000_000_000


# CPU time of this thread, not wall time: the shared machine runs other suites, and a
# process waiting for a core would otherwise be charged for the wait (measured: wall-time
# rounds of the same code differed 2-3x under a load average of 15).
_clock = time.thread_time


def _pin_to_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        return f"pinned to CPU {min(os.sched_getaffinity(0))}"
    return "not pinned (no sched_setaffinity)"


def _best_of(run: Callable[[], float]) -> float:
    return min(run() for _ in range(REPEATS))


def bench_in_order() -> tuple[float, float]:
    """Seconds per record for observe() and for the dict baseline (best of REPEATS)."""
    stamps = [
        Stamp(f"producer-{i % PRODUCERS:02d}", BASE_TS + i % PRODUCERS, i // PRODUCERS)
        for i in range(RECORDS)
    ]
    offsets = list(range(BASE_OFFSET, BASE_OFFSET + RECORDS))
    timestamps = [BASE_TS + i for i in range(RECORDS)]
    now = 1_700_000_000.0

    def run_tracker() -> float:
        tracker = PartitionTracker("bench", 0)
        observe = tracker.observe
        gc.disable()
        start = _clock()
        for offset, ts, stamp in zip(offsets, timestamps, stamps, strict=True):
            observe(offset, ts, stamp, now)
        elapsed = _clock() - start
        gc.enable()
        assert tracker.counters.records == RECORDS
        assert tracker.counters.open_gaps == 0
        return elapsed / RECORDS

    def run_dict() -> float:
        last: dict[str, int] = {}
        gc.disable()
        start = _clock()
        for offset, _ts, stamp in zip(offsets, timestamps, stamps, strict=True):
            last[stamp.producer] = offset
        elapsed = _clock() - start
        gc.enable()
        return elapsed / RECORDS

    # Interleave so that machine noise hits both alike.
    tracker_best, dict_best = float("inf"), float("inf")
    for _ in range(REPEATS):
        tracker_best = min(tracker_best, run_tracker())
        dict_best = min(dict_best, run_dict())
    return tracker_best, dict_best


def bench_memory(*, first_seq: int) -> tuple[float, float]:
    """Bytes per stream for STREAMS streams, each fed two records, everything retained by
    the tracker counted (producer ids, epochs, offsets included); just after first sight,
    and once the confirmation rule held for it (baselines of mid-way streams forgotten)."""
    # A full ring's own bytes are reported on their own line: take them out of the
    # per-stream figure (measured, not computed: the ring's sealed blocks are compact).
    ring_share = ring_bytes()
    gc.collect()
    tracemalloc.start()
    config = TrackerConfig(max_streams=STREAMS * 2)
    tracker = PartitionTracker("bench", 0, config=config)  # the ring is allocated here
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    now = 1_700_000_000.0
    offset = BASE_OFFSET
    for second in (False, True):
        for i in range(STREAMS):
            stamp = Stamp(f"producer-{i:06d}", BASE_TS + i, first_seq + second)
            tracker.observe(offset, BASE_TS + offset, stamp, now)
            offset += 1
    del stamp
    gc.collect()
    fresh = tracemalloc.get_traced_memory()[0]
    later = now + config.grace_period
    tracker.note_read_position(read_offset=offset, high_watermark=offset, observed_at=later)
    tracker.tick(later)
    gc.collect()
    settled = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert tracker.counters.streams == STREAMS
    return (fresh - before - ring_share) / STREAMS, (settled - before - ring_share) / STREAMS


def ring_bytes() -> float:
    """Bytes a full default ring holds: its sealed blocks, and its newest block's four
    lists with the ints they keep alive."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracker = PartitionTracker("bench", 0)
    for i in range(tracker.config.ring_size):
        stamp = Stamp("p", 1, 1_000_000 + i)  # freed after observe(), as a record would be
        tracker.observe(BASE_OFFSET + i, BASE_TS + i, stamp, 1.0)
    del stamp
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before


def _full_ring_tracker() -> PartitionTracker:
    # Two rings' worth of records from PRODUCERS producers taking turns.
    tracker = PartitionTracker("bench", 0)
    for i in range(2 * tracker.config.ring_size):
        stamp = Stamp(f"producer-{i % PRODUCERS:02d}", BASE_TS, i // PRODUCERS)
        tracker.observe(BASE_OFFSET + i, BASE_TS + i, stamp, 1.0)
    return tracker


def bench_snapshot() -> tuple[int, float, float, float]:
    """Size, and best-of-REPEATS seconds, of a full ring's checkpoint (16 streams): the
    first snapshot after the ring filled (every block new: ``cold``), a snapshot taken
    again (``warm``: blocks already compressed are reused, if the code caches them), and
    a restore."""
    cold = warm = decode = float("inf")
    for _ in range(REPEATS):
        tracker = _full_ring_tracker()
        gc.collect()
        start = _clock()
        data = tracker.snapshot()
        cold = min(cold, _clock() - start)
        start = _clock()
        data = tracker.snapshot()
        warm = min(warm, _clock() - start)
        start = _clock()
        PartitionTracker.restore(data, topic="bench", partition=0)
        decode = min(decode, _clock() - start)
    return len(data), cold, warm, decode


def main() -> None:
    """Print the figures recorded in docs/benchmarks.md."""
    print(f"bench_tracker: {_pin_to_one_core()}")
    tracker_s, dict_s = bench_in_order()
    print(
        f"in-order observe(): {tracker_s * 1e6:.3f} us/record; "
        f"bare dict update: {dict_s * 1e6:.3f} us/record; "
        f"ratio {tracker_s / dict_s:.2f}x  ({RECORDS:,} records, {PRODUCERS} producers, "
        f"best of {REPEATS}; target <= 0.5 us)"
    )
    ring = TrackerConfig().ring_size
    print(f"truncation ring: {ring:,} entries per partition, {ring_bytes():,.0f} bytes when full")
    size, cold, warm, decode = bench_snapshot()
    print(
        f"snapshot with a full ring: {size:,} bytes, first snapshot {cold * 1e3:.2f} ms, "
        f"again {warm * 1e3:.2f} ms (target <= 0.5), restore {decode * 1e3:.2f} ms "
        f"(target <= 3)"
    )
    for first_seq, what in (
        (0, "seen from sequence 0"),
        (12_345, "first seen mid-way at seq 12,345"),
    ):
        fresh, settled = bench_memory(first_seq=first_seq)
        print(
            f"memory ({what}): {settled:.0f} bytes per stream at {STREAMS:,} streams "
            f"(target <= 300); {fresh:.0f} right after first sight"
        )


if __name__ == "__main__":
    main()
