"""The thread switch interval of ``gapwatch monitor``: how long a worker thread may hold
the GIL while the event loop waits for it.

A process-wide setting, so it is the command's decision (the composition of a process),
like the garbage-collector settings in :mod:`gapwatch.commands.process_gc`.
"""

from __future__ import annotations

import sys
from typing import Final

# CPython's default is 5 ms.
THREAD_SWITCH_INTERVAL_S: Final = 0.001


def tune_thread_switching(interval_s: float = THREAD_SWITCH_INTERVAL_S) -> None:
    """Ask a thread holding the GIL to hand it over after ``interval_s`` instead of 5 ms.

    Checkpoint rounds take their snapshots in a worker thread (pure Python, so it holds the
    GIL) while the event loop goes on serving fetches, commits and HTTP. Each time the loop
    comes back from a system call (``select``, a socket write) it has to wait for the GIL
    again, up to one switch interval, and a loop step makes several such calls: with the
    default 5 ms the loop's lag during a round was tens of milliseconds at thousands of
    partitions (``docs/benchmarks.md``, Scale). The worker's own cost is more frequent
    hand-overs, which are cheap next to a snapshot.
    """
    if interval_s <= 0:
        raise ValueError(f"thread switch interval must be positive, got {interval_s}")
    sys.setswitchinterval(interval_s)
