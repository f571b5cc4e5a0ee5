"""Consumption throughput with dead alert sinks against the same run without sinks.

Starts its own 1-node ``KafkaCluster``. One topic (12 partitions) is prefilled with
``--records`` stamped records of 100 bytes from 4 producer ids, with every ``--gap-every``-th
sequence of each stream missing, so the monitor opens and confirms a gap every few hundred
records and its sinks have work. Then, in alternating rounds, the monitor (fresh group,
from earliest, 0.2 s grace so gaps are confirmed while it reads) reads everything with:

* ``none``: no sinks (the gap log is always on);
* ``hang``: Alertmanager and webhook URLs pointing at a receiver that never answers;
* ``fail``: both pointing at a receiver that answers every request with HTTP 500.

The receivers run in their own processes (``python -m gapwatch.testing.receiver``), as a
real sink would; rounds rotate the order of the three configurations.

The webhook receives every kind of change (the most work for a sink). Throughput is timed
like ``bench_monitor.py``: a 10 ms poller on the monitor's loop, from the first record read
to the last. Reported: medians per configuration and each ratio to ``none`` (target: within
5 %, i.e. >= 0.95), plus what the sinks counted (failures, drops) and the gap log's figures.

Run: ``.venv/bin/python bench/bench_sinks.py [--records N] [--rounds R]`` (about 3 minutes
with the defaults). The machine is shared with the broker, so figures are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

from harness import (
    PARTITIONS,
    fresh_monitor,
    monitor_config,
    prefill,
    read_all,
    receiver_process,
)

from gapwatch.monitor.config import AlertingSettings, MonitorConfig, TrackerSettings
from gapwatch.testing.kafka import KafkaCluster

PHASE_TIMEOUT_S = 300.0
ALL_KINDS = ("opened", "shrunk", "split", "healed", "confirmed", "recovered", "truncated")


def config_for(bootstrap: str, topic: str, group: str, sink_url: str | None) -> MonitorConfig:
    alerting = AlertingSettings()
    if sink_url is not None:
        alerting = AlertingSettings(
            alertmanager_urls=(sink_url,),
            webhook_url=sink_url,
            webhook_events=ALL_KINDS,
            repost_interval=1.0,
            sink_timeout=2.0,
        )
    return monitor_config(
        bootstrap, (topic,), group, tracker=TrackerSettings(grace_period=0.2), alerting=alerting
    )


async def monitor_rate(config: MonitorConfig, total: int) -> tuple[float, dict[str, int]]:
    """Records/s of a monitor reading everything, and what its sinks and gap log counted."""
    async with fresh_monitor(config) as monitor:
        rate, _ = await read_all(monitor, total, timeout_s=PHASE_TIMEOUT_S)
        # The gap log's sender shares the loop with the reading; it catches up afterwards.
        drained_at = time.monotonic()
        for _ in range(1200):  # at most 60 s
            if not monitor.gap_log.pending:
                break
            await asyncio.sleep(0.05)
        figures = {
            f"{s.name}.{k}": getattr(s, k)
            for s in monitor.sink_stats()
            for k in ("failures", "dropped", "deliveries")
        }
        figures["gap_log.published"] = monitor.gap_log.published
        figures["gap_log.pending"] = monitor.gap_log.pending
        figures["gap_log.drain_ms"] = int((time.monotonic() - drained_at) * 1000)
        figures["gaps_confirmed_local"] = sum(
            1 for g in monitor.store.values() if g.state.value == "confirmed"
        )
        return rate, figures


async def main(records: int, rounds: int, gap_every: int) -> None:
    with KafkaCluster(nodes=1) as cluster:
        bootstrap = cluster.bootstrap_servers
        topic = "bench-sinks"
        await cluster.create_topic(topic, partitions=PARTITIONS)
        total = await prefill(bootstrap, topic, records, gap_every=gap_every)
        print(f"prefilled {total} records, a gap every {gap_every} records per stream")
        rates: dict[str, list[float]] = {"none": [], "hang": [], "fail": []}
        last: dict[str, dict[str, int]] = {}
        with receiver_process("hang") as hanging, receiver_process("fail") as failing:
            urls: dict[str, str | None] = {"none": None, "hang": hanging, "fail": failing}
            names = list(urls)
            for round_no in range(rounds):
                # Rotate the order so that no configuration always runs first.
                for name in names[round_no % 3 :] + names[: round_no % 3]:
                    url = urls[name]
                    group = f"bench-sinks-{name}-{round_no}"
                    rate, figures = await monitor_rate(
                        config_for(bootstrap, topic, group, url), total
                    )
                    rates[name].append(rate)
                    last[name] = figures
                    print(f"round {round_no + 1} {name:>4}: {rate:10,.0f} records/s  {figures}")
        base = statistics.median(rates["none"])
        print()
        print("| sinks | median records/s | ratio to no sinks |")
        print("|---|---|---|")
        for name, values in rates.items():
            median = statistics.median(values)
            print(f"| {name} | {median:,.0f} | {median / base:.3f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=600_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gap-every", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.records, args.rounds, args.gap_every))
    sys.exit(0)
