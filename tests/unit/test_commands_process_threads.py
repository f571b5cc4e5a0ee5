"""The thread switch interval of the `gapwatch monitor` process."""

from __future__ import annotations

import sys

import pytest

from gapwatch.commands.process_threads import THREAD_SWITCH_INTERVAL_S, tune_thread_switching


def test_tune_thread_switching_shortens_cpythons_default_interval() -> None:
    """The monitor's interval is shorter than CPython's 5 ms, and it is what the process
    uses afterwards."""
    before = sys.getswitchinterval()
    try:
        tune_thread_switching()
        assert sys.getswitchinterval() == pytest.approx(THREAD_SWITCH_INTERVAL_S)
        assert THREAD_SWITCH_INTERVAL_S < 0.005
    finally:
        sys.setswitchinterval(before)


@pytest.mark.parametrize("interval", [0.0, -0.001])
def test_tune_thread_switching_refuses_an_interval_that_is_not_positive(
    interval: float,
) -> None:
    before = sys.getswitchinterval()
    with pytest.raises(ValueError, match="must be positive"):
        tune_thread_switching(interval)
    assert sys.getswitchinterval() == before
