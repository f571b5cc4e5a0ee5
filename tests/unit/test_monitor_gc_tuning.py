"""The `gapwatch monitor` process's garbage-collector settings."""

from __future__ import annotations

import gc

from gapwatch.monitor.app import GC_GEN0_THRESHOLD, tune_gc


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
