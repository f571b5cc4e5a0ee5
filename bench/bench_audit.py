"""``gapwatch audit``'s throughput against a bare aiokafka ``getmany`` loop, in one run.

Starts its own 1-node ``KafkaCluster``, prefills one topic (12 partitions) with
``--records`` stamped records of 100 bytes from 4 producer ids (as ``bench_monitor.py``
does), then in alternating rounds, in this process and with the same GC settings (those of
the ``gapwatch audit`` command, ``--default-gc`` for CPython's defaults):

* **bare**: a consumer without a group, with the audit's fetch settings, assigned every
  partition from the beginning, that only counts what ``getmany`` returns until it has
  read every record;
* **audit**: :func:`gapwatch.commands.range_audit.run_audit` over the whole topic;
* **audit, public path**: the same with ``read_batches_directly=False`` (aiokafka's
  ``getmany()`` and its ``ConsumerRecord`` objects, as the audit read before).

Both are timed as wall time from building the consumer to the last record read (the
audit's also includes its topic description and the offsets it asks for, a few round
trips), and records per CPU second of this process over the same span. Reported: each
round, the medians, the median of the rounds' ratios audit / bare (target >= 0.90) and
the ratio of records per CPU second (steadier when other work shares the machine).

Run: ``.venv/bin/python bench/bench_audit.py [--records N] [--rounds R]`` (about 60 s
with the defaults). ``--profile FILE`` writes a cProfile of the audit rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import statistics
import time
from collections.abc import Coroutine, Iterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from harness import PARTITIONS, prefill

from gapwatch.commands.process_gc import tune_gc
from gapwatch.commands.range_audit import audit_fetch_settings, run_audit
from gapwatch.testing.kafka import KafkaCluster

TOPIC = "bench-audit"


async def bare_read(bootstrap: str, total: int) -> None:
    """A consumer that only counts what ``getmany`` returns, until ``total``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="none",
        **audit_fetch_settings(),
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(TOPIC, p) for p in range(PARTITIONS)])
        await consumer.seek_to_beginning()
        count = 0
        while count < total:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                count += len(records)
    finally:
        await consumer.stop()


async def audit_read(bootstrap: str, total: int, *, direct: bool = True) -> None:
    """The audit of the whole topic; it must have read ``total`` records. ``direct=False``:
    through aiokafka's public ``getmany()``."""
    result = await run_audit(
        client_kwargs={"bootstrap_servers": bootstrap}, topic=TOPIC, read_batches_directly=direct
    )
    read = sum(stop - start for start, stop in result.ranges.values())
    if read != total or result.gaps:
        raise RuntimeError(f"audit read {read} of {total} records, {len(result.gaps)} gaps")


async def timed(work: Coroutine[Any, Any, None], total: int) -> tuple[float, float]:
    """Records per wall second and per CPU second of this process, for ``work``."""
    wall, cpu = time.perf_counter(), time.process_time()
    await work
    return total / (time.perf_counter() - wall), total / (time.process_time() - cpu)


@contextlib.contextmanager
def gc_settings(*, default: bool) -> Iterator[None]:
    """The GC settings of ``gapwatch audit`` (unless ``default``), restored afterwards."""
    before = gc.get_threshold()
    if not default:
        tune_gc()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


async def main(args: argparse.Namespace) -> int:
    total = args.records - args.records % PARTITIONS
    profile = cProfile.Profile() if args.profile else None
    with KafkaCluster(nodes=1) as cluster:
        bootstrap = cluster.bootstrap_servers
        await cluster.create_topic(TOPIC, partitions=PARTITIONS)
        started = time.perf_counter()
        await prefill(bootstrap, TOPIC, total)
        print(f"prefilled {total} records in {time.perf_counter() - started:.1f} s", flush=True)
        await bare_read(bootstrap, total)  # warm-up: the broker's page cache, the JIT
        bare: list[tuple[float, float]] = []
        audit: list[tuple[float, float]] = []
        public: list[tuple[float, float]] = []
        for round_ in range(args.rounds):
            # Alternating, so a burst of load from elsewhere on the machine hits both.
            with gc_settings(default=args.default_gc):
                bare.append(await timed(bare_read(bootstrap, total), total))
            with gc_settings(default=args.default_gc):
                if profile is not None:
                    profile.enable()
                audit.append(await timed(audit_read(bootstrap, total), total))
                if profile is not None:
                    profile.disable()
            with gc_settings(default=args.default_gc):
                public.append(await timed(audit_read(bootstrap, total, direct=False), total))
            print(
                f"round {round_ + 1}: bare {bare[-1][0]:,.0f}/s ({bare[-1][1]:,.0f}/CPU-s), "
                f"audit {audit[-1][0]:,.0f}/s ({audit[-1][1]:,.0f}/CPU-s), "
                f"ratio {audit[-1][0] / bare[-1][0]:.2f}; audit through the public getmany "
                f"{public[-1][0]:,.0f}/s ({public[-1][1]:,.0f}/CPU-s)",
                flush=True,
            )
    if profile is not None:
        profile.dump_stats(args.profile)
    bare_median = statistics.median(rate for rate, _ in bare)
    audit_median = statistics.median(rate for rate, _ in audit)
    cpu_ratio = statistics.median(c for _, c in audit) / statistics.median(c for _, c in bare)
    ratios = sorted(a[0] / b[0] for a, b in zip(audit, bare, strict=True))
    public_ratios = sorted(a[0] / b[0] for a, b in zip(public, bare, strict=True))
    public_cpu = statistics.median(c for _, c in public) / statistics.median(c for _, c in bare)
    gc_name = "CPython's default GC" if args.default_gc else "gapwatch audit's GC settings"
    print()
    print(
        f"throughput ({gc_name}): bare getmany {bare_median:,.0f} records/s, "
        f"audit {audit_median:,.0f} (medians)"
    )
    print(
        f"  ratio audit/bare, median of the rounds: {statistics.median(ratios):.2f}  "
        f"(target >= 0.90); per round {', '.join(f'{r:.2f}' for r in ratios)}; "
        f"records per CPU-s of this process: {cpu_ratio:.2f}"
    )
    print(
        f"  the audit through aiokafka's public getmany (read_batches_directly=False): "
        f"{statistics.median(public_ratios):.2f}; per round "
        f"{', '.join(f'{r:.2f}' for r in public_ratios)}; per CPU-s {public_cpu:.2f}"
    )
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=600_000, help="prefilled records")
    parser.add_argument("--rounds", type=int, default=5, help="bare/audit rounds")
    parser.add_argument("--default-gc", action="store_true", help="CPython's GC defaults")
    parser.add_argument("--profile", help="write a cProfile of the audit rounds here")
    return parser.parse_args()


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse_args())))
