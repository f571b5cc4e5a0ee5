"""In-order ``observe()`` of two checkouts of gapwatch, run alternately in one session.

Compares the tracker's hot path before and after a change: each round runs
``bench_tracker.bench_in_order()`` of checkout A, then of checkout B, each in a fresh
process with that checkout's own virtualenv and source (so each measures its own code),
pinned to one core; the harness (``bench_tracker.py``, which times in thread CPU time) is
checkout B's for both. Alternating spreads machine noise over both alike; the figures are
the best of each checkout's rounds, and the per-round ratios show how steady that is.

    .venv/bin/python bench/compare_tracker.py ../gapwatch-base .   # before, after

Each checkout must have ``.venv/bin/python`` and ``bench/bench_tracker.py``.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

_SNIPPET = """
import sys
sys.path.insert(0, sys.argv[1])
import bench_tracker
bench_tracker._pin_to_one_core()
tracker_s, dict_s = bench_tracker.bench_in_order()
print(tracker_s, dict_s)
"""


def _measure(checkout: Path, harness: Path) -> tuple[float, float]:
    out = subprocess.run(
        [str(checkout / ".venv/bin/python"), "-c", _SNIPPET, str(harness)],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="checkout measured first in each round")
    parser.add_argument("after", type=Path, help="checkout measured second in each round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # Both checkouts run the same harness (the "after" one's bench_tracker.py), each with
    # its own gapwatch: a change to the harness's clock or workload applies to both.
    harness = args.after.resolve() / "bench"
    best = {"before": float("inf"), "after": float("inf")}
    for round_no in range(1, args.rounds + 1):
        before, before_dict = _measure(args.before.resolve(), harness)
        after, after_dict = _measure(args.after.resolve(), harness)
        best["before"] = min(best["before"], before)
        best["after"] = min(best["after"], after)
        print(
            f"round {round_no}: before {before * 1e6:.3f} us/record "
            f"(dict {before_dict * 1e6:.3f}), after {after * 1e6:.3f} us/record "
            f"(dict {after_dict * 1e6:.3f}), after/before {after / before:.3f}"
        )
    ratio = best["after"] / best["before"]
    print(
        f"best: before {best['before'] * 1e6:.3f} us/record, after {best['after'] * 1e6:.3f} "
        f"us/record, after/before {ratio:.3f} (target: after <= 0.5 us and <= 1.10x before)"
    )


if __name__ == "__main__":
    main()
