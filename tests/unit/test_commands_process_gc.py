"""The garbage-collector settings of the `gapwatch monitor` and `gapwatch audit` processes."""

from __future__ import annotations

import gc

from gapwatch.commands.process_gc import GC_GEN0_THRESHOLD, tune_gc, tuned_gc


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
