"""The tracker still answers as the tracker before the architecture refactor did.

``record_tracker_workloads.py`` (beside this file) recorded, on the code before the
refactor, every answer of the tracker to a few thousand seeded random workloads, and
snapshot bytes of many shapes with what a tracker restored from them shows and says
next. These tests run that script's check in a child process with ``PYTHONHASHSEED=0``
(the recorded answers were taken under it; see the script's docstring for why).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "record_tracker_workloads.py"


def _check(what: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--check", what],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


class TestTrackerDifferential:
    @pytest.mark.parametrize("what", ["workloads", "snapshots"])
    def test_answers_match_the_recording(self, what: str) -> None:
        """Fed the recorded workloads (or restored from the recorded snapshot bytes of the
        code before the refactor and fed the rest), the tracker gives the recorded events,
        counters, gaps and streams, fact by fact."""
        result = _check(what)
        assert result.returncode == 0, result.stdout + result.stderr
