"""The garbage-collector settings of the long reading processes: ``gapwatch monitor`` and
``gapwatch audit``.

A process-wide setting, so it is the command's decision (the composition of a process),
never a library's: :class:`~gapwatch.monitor.app.RunningMonitor` and
:func:`~gapwatch.commands.range_audit.run_audit` leave the collector as their embedder set it.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Final

# Young collections every 10,000 allocations instead of 700 (about 2,000 records).
GC_GEN0_THRESHOLD: Final = 10_000


def tune_gc() -> None:
    """Freeze what start-up allocated and collect young objects less often.

    The record path allocates a few container objects per record (aiokafka's
    ``ConsumerRecord``, its header tuples), so with CPython's default threshold (a young
    collection every 700 allocations, a full one every 100 young ones if the heap grew by a
    quarter) the cyclic garbage collector ran every ~150 records and regularly walked the whole
    heap: FastAPI, pydantic, aiokafka and the trackers' truncation rings. Measured in
    ``bench/bench_monitor.py`` (records per CPU second of the process, 240k records): the
    monitor went from 116,000 to 180,000 with a young threshold of 50,000 (one interleaved
    run); a bare aiokafka loop gains as much, so ``docs/benchmarks.md`` reports ratios both
    ways. ``gapwatch audit`` reads the same records the same way (``bench/bench_audit.py``).

    Records are freed by reference counting as soon as a batch is processed; the collector is
    only needed for reference cycles (asyncio tasks and exceptions), which these thresholds
    still collect, just less often. ``gc.freeze()`` moves everything that exists after start-up
    (modules, the web app, configuration) out of the collector's sight for good: call it after
    the command's imports.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def freeze_survivors() -> None:
    """Collect the young generations, then freeze whatever survived.

    ``gapwatch monitor`` calls it after each step of restoring assigned partitions (every
    few milliseconds of restores). Each partition brings thousands of container objects
    (its tracker, the truncation ring's lists and the streams they point at); while they
    waited in the collector's generations, every full collection walked all of them:
    264 ms with 1,000 fresh trackers, over a second at 5,000, a stall of the event loop
    each time, and full collections come every time the heap grew by a quarter, which it
    does all through a large restore. Frozen, they are never walked again. Nothing is
    lost: a tracker holds no reference cycles, so a revoked partition's state is freed by
    reference counting, frozen or not, and the young collection first frees the cyclic
    garbage of the moment, which would otherwise be frozen with it. Cheap: a young
    collection of a few milliseconds' allocations, and ``gc.freeze()`` only moves lists.
    """
    gc.collect(1)
    gc.freeze()


@contextlib.contextmanager
def tuned_gc() -> Iterator[None]:
    """:func:`tune_gc` for the time of the block; the thresholds before it, unfrozen, after.

    For a command whose handler may run inside another program's process (tests call
    ``gapwatch.cli.main``): after it, that process's collector is as it was.
    """
    before = gc.get_threshold()
    tune_gc()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
