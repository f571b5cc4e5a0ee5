"""Record, or check, what the tracker answers to thousands of random workloads.

The recorded answers (``tests/data/tracker_workloads.json.xz``) and snapshot bytes
(``tests/data/tracker_snapshots.json.xz``) were written by the tracker as it was before a
refactor; ``test_tracker_differential.py`` runs this script with ``--check`` to prove the
tracker of today still gives the same answers, and still restores those bytes and goes
on exactly as the old tracker did.

Usage (from the repository root)::

    PYTHONHASHSEED=0 .venv/bin/python tests/unit/record_tracker_workloads.py --check
    PYTHONHASHSEED=0 .venv/bin/python tests/unit/record_tracker_workloads.py --record

Re-record only when the tracker's behaviour is meant to change (a rule changed on
purpose, reviewed as such) or the generator changed (bump ``GENERATOR_VERSION``); never to
make a refactor pass. Recording keeps the old snapshot bytes unless ``--new-snapshots``
is given: those bytes stand for checkpoints already written by deployed monitors.

``PYTHONHASHSEED`` is fixed because one tracker decision today iterates a set of gap ids
(closing a dropped stream's watched gaps), so the order of the bounded closed history
depends on the per-process string hash seed. With the seed fixed, every answer is exact.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracker_workloads import (
    GENERATOR_VERSION,
    Workload,
    decode_bytes,
    encode_bytes,
    generate,
    observable_state,
    restore,
    run_workload,
    special_workloads,
)

DATA = Path(__file__).resolve().parent.parent / "data"
WORKLOADS_FILE = DATA / "tracker_workloads.json.xz"
SNAPSHOTS_FILE = DATA / "tracker_snapshots.json.xz"
SEEDS = range(3000)
MAX_SNAPSHOTS_PER_SHAPE = 1


def workloads() -> Iterator[Workload]:
    """Every workload, in recording order: the seeded ones, then the special ones."""
    for seed in SEEDS:
        yield generate(seed)
    yield from special_workloads()


def _write(path: Path, data: Any) -> None:
    text = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(lzma.compress(text, preset=9))


def _read(path: Path) -> Any:
    return json.loads(lzma.decompress(path.read_bytes()))


def _shape(state: dict[str, Any], config: dict[str, Any]) -> str:
    # What kind of tracker a snapshot holds, so the kept set covers every kind.
    c = state["counters"]
    parts = sorted({g["state"] for g in state["gaps"]})
    parts += [k for k in ("resets", "truncated", "gaps_unknown", "unknown_fate") if c[k]]
    if any(s["key"]["epoch"] > 0 for s in state["streams"]):
        parts.append("epochs")
    if c["records"] > config.get("ring_size", 16384):
        parts.append("ring_wrapped")
    if not c["records"]:
        parts.append("empty")
    return ",".join(parts)


def record_workloads() -> None:
    results = [run_workload(w) for w in workloads()]
    _write(WORKLOADS_FILE, {"generator_version": GENERATOR_VERSION, "results": results})
    print(f"recorded {len(results)} workloads in {WORKLOADS_FILE}")


def record_snapshots() -> None:
    kept: list[dict[str, Any]] = []
    per_shape: dict[str, int] = {}
    for workload in workloads():
        taken: list[tuple[int, bytes]] = []
        run_workload(workload, on_snapshot=lambda i, data, taken=taken: taken.append((i, data)))
        for index, data in taken:
            tracker = restore(data, workload)
            state = observable_state(tracker)
            shape = _shape(state, workload.config)
            if workload.seed >= 0 and per_shape.get(shape, 0) >= MAX_SNAPSHOTS_PER_SHAPE:
                continue
            per_shape[shape] = per_shape.get(shape, 0) + 1
            kept.append(
                {
                    "seed": workload.seed,
                    "index": index,
                    "digest": workload.digest(),
                    "bytes": encode_bytes(data),
                    "restored": state,
                    "continued": run_workload(workload, tracker=tracker, start=index + 1),
                }
            )
    _write(SNAPSHOTS_FILE, {"generator_version": GENERATOR_VERSION, "snapshots": kept})
    print(f"recorded {len(kept)} snapshots of {len(per_shape)} shapes in {SNAPSHOTS_FILE}")


def _first_difference(old: Any, new: Any, where: str = "") -> str:
    if type(old) is not type(new):
        return f"{where}: {old!r} != {new!r}"
    if isinstance(old, dict):
        for k in sorted(set(old) | set(new)):
            if old.get(k) != new.get(k):
                return _first_difference(old.get(k), new.get(k), f"{where}.{k}")
    if isinstance(old, list):
        for i, (a, b) in enumerate(zip(old, new, strict=False)):
            if a != b:
                return _first_difference(a, b, f"{where}[{i}]")
        return f"{where}: length {len(old)} != {len(new)}"
    return f"{where}: {old!r} != {new!r}"


def check_workloads() -> list[str]:
    recorded = _read(WORKLOADS_FILE)
    if recorded["generator_version"] != GENERATOR_VERSION:
        return ["the generator changed since the recording (GENERATOR_VERSION)"]
    failures = []
    all_workloads = list(workloads())
    if len(all_workloads) != len(recorded["results"]):
        return [f"{len(all_workloads)} workloads, {len(recorded['results'])} recorded"]
    for workload, old in zip(all_workloads, recorded["results"], strict=True):
        if old["digest"] != workload.digest():
            failures.append(f"seed {workload.seed}: the generator gives other facts")
            continue
        new = run_workload(workload)
        if new != old:
            diff = _first_difference(old, new)
            failures.append(f"seed {workload.seed} ({workload.config}): {diff}")
    return failures


def check_snapshots() -> list[str]:
    recorded = _read(SNAPSHOTS_FILE)
    by_seed = {w.seed: w for w in workloads()}
    failures = []
    for snap in recorded["snapshots"]:
        workload = by_seed[snap["seed"]]
        label = f"snapshot of seed {snap['seed']} at fact {snap['index']}"
        if snap["digest"] != workload.digest():
            failures.append(f"{label}: the generator gives other facts")
            continue
        try:
            tracker = restore(decode_bytes(snap["bytes"]), workload)
        except Exception as exc:
            failures.append(f"{label}: restore raised {exc!r}")
            continue
        state = observable_state(tracker)
        if state != snap["restored"]:
            failures.append(f"{label}, restored: {_first_difference(snap['restored'], state)}")
            continue
        continued = run_workload(workload, tracker=tracker, start=snap["index"] + 1)
        if continued != snap["continued"]:
            diff = _first_difference(snap["continued"], continued)
            failures.append(f"{label}, continued: {diff}")
    if not recorded["snapshots"]:
        failures.append("no recorded snapshots")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", action="store_true", help="record the workloads' answers")
    mode.add_argument("--check", choices=["workloads", "snapshots", "all"])
    parser.add_argument(
        "--new-snapshots", action="store_true", help="with --record: replace the snapshot bytes"
    )
    args = parser.parse_args()
    if os.environ.get("PYTHONHASHSEED") != "0":
        print("run with PYTHONHASHSEED=0 (see the module docstring)", file=sys.stderr)
        return 2
    if args.record:
        record_workloads()
        if args.new_snapshots or not SNAPSHOTS_FILE.exists():
            record_snapshots()
        return 0
    failures: list[str] = []
    if args.check in ("workloads", "all"):
        failures += check_workloads()
    if args.check in ("snapshots", "all"):
        failures += check_snapshots()
    for line in failures[:20]:
        print(line)
    if failures:
        print(f"{len(failures)} differences", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
