"""The garbage-collector settings of the `gapwatch monitor` and `gapwatch audit` processes."""

from __future__ import annotations

import gc
import weakref

from gapwatch.commands.process_gc import (
    GC_GEN0_THRESHOLD,
    freeze_survivors,
    tune_gc,
    tuned_gc,
)
from gapwatch.core.config import TrackerConfig
from gapwatch.monitor.state.partitions import OwnedPartitions


def test_tune_gc_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    """After tune_gc, start-up objects are frozen and young collections are rarer; the
    older generations keep their thresholds."""
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, before[1], before[2])
        assert before[0] < GC_GEN0_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_tuned_gc_restores_the_collector_after_the_block() -> None:
    """Inside the block the settings of tune_gc hold; after it, the thresholds before it
    and nothing frozen (gapwatch audit run inside another process leaves it as it was)."""
    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    with tuned_gc():
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen_before == 0


def _busy_partition(partitions: OwnedPartitions, partition: int) -> None:
    """A partition whose tracker went through most of its states: several streams, a gap,
    a duplicate, a tick, a truncation, a snapshot and a restore."""
    state = partitions.add("t", partition)
    state.seek(0)
    tracker = state.tracker
    for offset in range(400):
        if offset in (150, 151):
            continue  # a gap in the stream of producer p2
        tracker.observe_fields(offset, 1_000 + offset, f"p{offset % 4}", 1, offset // 4, 1.0)
    tracker.observe_fields(400, 1_400, "p0", 1, 3, 1.5)  # a duplicate
    tracker.tick(100.0)
    tracker.log_truncated(390, 101.0)
    state.restore(tracker.snapshot(), TrackerConfig())
    state.mark_restored()


class TestFreezeSurvivors:
    def test_survivors_are_frozen_and_young_cycles_are_collected_first(self) -> None:
        """What is alive is frozen; cyclic garbage of the moment is collected, not frozen."""
        gc.collect()
        try:
            kept = [[] for _ in range(100)]
            cycle: list[object] = []
            cycle.append(cycle)
            witness = weakref.ref(_Node(cycle))  # a node in a cycle, unreachable below
            del cycle
            frozen_before = gc.get_freeze_count()
            freeze_survivors()
            assert gc.get_freeze_count() >= frozen_before + len(kept)
            assert witness() is None
            # Frozen objects are in no generation the collector walks.
            walked = {id(o) for o in gc.get_objects()}
            assert not any(id(k) in walked for k in kept)
        finally:
            gc.unfreeze()

    def test_dropped_partition_state_leaves_no_cyclic_garbage(self) -> None:
        """Freezing restored partitions leaks nothing when they are revoked: their state
        holds no reference cycles, so reference counting frees it, frozen or not."""
        partitions = OwnedPartitions(TrackerConfig())
        gc.collect()
        gc.disable()  # only this test's collect() below may find the garbage
        try:
            for partition in range(20):
                _busy_partition(partitions, partition)
            for partition in range(20):
                assert partitions.remove("t", partition) is not None
            assert gc.collect() == 0
        finally:
            gc.enable()


class _Node:
    """A weak-referenceable object that refers to ``other`` (to build a cycle)."""

    def __init__(self, other: list[object]) -> None:
        self.other = other
        other.append(self)
