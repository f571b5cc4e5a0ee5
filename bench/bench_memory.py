"""Memory per owned partition with a full truncation ring, as the slope of process RSS
(a script, not a test).

Each figure is measured in a fresh process that builds ``N`` partition trackers and feeds
each one more than a full ring of records shaped like a real topic's, timestamps that
climb about 1 ms per 20 records with jitter, offsets beyond 2^32, in one of three shapes:
``single`` (one producer), ``batches`` (4 producers writing batches of 1-64 records each
in turn) and ``interleaved`` (4 producers taking turns record by record, the issue's
reference workload at its most mixed). RSS is read after a full GC. The slope between 30
and 300 partitions is the cost of one more owned partition (the process's fixed cost
cancels).

    .venv/bin/python bench/bench_memory.py                      # this checkout
    .venv/bin/python bench/bench_memory.py --base /work/main    # and a base checkout, same run
    .venv/bin/python bench/bench_memory.py --checkpointed       # after one snapshot each

``--base`` runs the same measurement with the other checkout's ``.venv/bin/python`` and
source, alternately with this one. Target (issue 13): <= 200 KiB per owned partition.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

SMALL, LARGE = 30, 300
SHAPES = ("single", "batches", "interleaved")
TARGET_BYTES = 200 * 1024

_CHILD = """
import gc, random, sys
from gapwatch.core.tracker import PartitionTracker
from gapwatch.core.wire import Stamp

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

partitions, shape, checkpointed = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
producers = 1 if shape == "single" else 4
rnd = random.Random(7)
trackers = []
for p in range(partitions):
    t = PartitionTracker("bench", p)
    ring = t.config.ring_size
    offset, ts = 5_000_000_000 + p, 1_700_000_000_000
    seqs = [0, 0, 0, 0]
    read = 0
    while read < ring + 3_000:
        producer = rnd.randrange(producers) if shape != "interleaved" else read % 4
        for _ in range(rnd.randint(1, 64) if shape == "batches" else 1):
            stamp = Stamp(f"producer-{producer}", 1, seqs[producer])
            t.observe(offset, ts + rnd.randint(0, 3), stamp, 1.0)
            seqs[producer] += 1
            offset += 1
            read += 1
            if read % 20 == 0:
                ts += 1
    if checkpointed:
        t.snapshot()  # what a checkpoint round leaves behind (cached compressed blocks)
    trackers.append(t)
del stamp
gc.collect()
print(rss())
"""


def _rss(checkout: Path, partitions: int, shape: str, checkpointed: bool) -> int:
    result = subprocess.run(
        [
            str(checkout / ".venv/bin/python"),
            "-c",
            _CHILD,
            str(partitions),
            shape,
            str(int(checkpointed)),
        ],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout.split()[-1])


def _slope(checkout: Path, shape: str, checkpointed: bool) -> tuple[int, int, float]:
    small = _rss(checkout, SMALL, shape, checkpointed)
    large = _rss(checkout, LARGE, shape, checkpointed)
    return small, large, (large - small) / (LARGE - SMALL)


def main() -> None:
    """Print RSS at SMALL and LARGE partitions and the slope, per checkout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, help="a base checkout to measure in the same run")
    parser.add_argument(
        "--checkpointed",
        action="store_true",
        help="take each partition's snapshot once after filling it, as a checkpoint would",
    )
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=SHAPES)
    args = parser.parse_args()
    checkouts = [("this", Path.cwd())]
    if args.base is not None:
        checkouts.insert(0, ("base", args.base.resolve()))
    for shape, name, checkout in [(s, *c) for s in args.shapes for c in checkouts]:
        small, large, slope = _slope(checkout, shape, args.checkpointed)
        print(
            f"{shape}, {name} ({checkout}): RSS {small / 2**20:.1f} MiB at {SMALL} partitions, "
            f"{large / 2**20:.1f} MiB at {LARGE}; {slope / 1024:,.1f} KiB per partition "
            f"with a full ring (target <= {TARGET_BYTES // 1024} KiB: "
            f"{'met' if slope <= TARGET_BYTES else 'NOT met'})"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
