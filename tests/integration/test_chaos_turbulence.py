"""Scenario 6: no false alarms under turbulence that loses nothing.

The safe configuration (replication factor 3, ``min.insync.replicas=2``, unclean election
off, an idempotent ``acks=all`` producer) under steady load on three partitions, while:

1. every node is restarted in turn (SIGTERM, a controlled shutdown that moves partition
   leadership and, for the active controller, the KRaft quorum's leadership first), each
   back in every ISR before the next;
2. a second monitor instance joins the group (the partitions are split and checkpointed
   over), then leaves (they come back, restored from the checkpoints);
3. the producer restarts: it stops with a final report and starts again with the same
   ``producer_id`` and a new epoch.

Nothing is lost, so gapwatch must confirm no gap other than ``producer_told`` ones (sends
that failed, if any), and every duplicate it counts must be a real duplicate in the log.
"""

from __future__ import annotations

import asyncio

import pytest
from chaos_support import (
    ACKED,
    FAILED,
    AppProducer,
    Progress,
    assert_starts_in_log,
    expected_gaps,
    gapwatch_findings,
    read_truth,
    settle_monitor,
    show_spans,
    start_chaos_monitor,
    wait_for,
    wait_isr,
)

from gapwatch.monitor.app import RunningMonitor
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.chaos

PARTITIONS = 3
RATE_INTERVAL_S = 0.01


async def _keep_sending(app: AppProducer, stop: asyncio.Event, limit: int) -> None:
    for i in range(limit):
        if stop.is_set():
            return
        await app.send(i % PARTITIONS)
        await asyncio.sleep(RATE_INTERVAL_S)


async def test_scenario_6_no_false_alarms_under_turbulence(
    kafka3: KafkaCluster, make_topic: MakeTopic
) -> None:
    """Rolling restart, monitor rebalance and producer restart: no confirmed gap except
    producer_told ones, and the duplicates counted equal the log's."""
    progress = Progress("scenario-6 turbulence")
    topic = await make_topic(
        kafka3,
        PARTITIONS,
        3,
        {"min.insync.replicas": "2", "unclean.leader.election.enable": "false"},
    )
    report_topic = f"{topic}-reports"
    everyone = set(kafka3.node_ids)
    for p in range(PARTITIONS):
        await wait_isr(kafka3, topic, everyone, partition=p)
    progress.step(f"topic {topic}: {PARTITIONS} partitions, RF 3, min ISR 2; idempotent acks=all")
    settings = {"acks": "all", "enable_idempotence": True, "request_timeout_ms": 5000}
    first = await AppProducer.start(
        kafka3, topic, report_topic, producer_id="s6-service", **settings
    )
    apps = [first]
    group = f"g-{topic}"
    monitor = await start_chaos_monitor(kafka3, topic, report_topic, instance_id="monitor-a")
    second = None
    stop = asyncio.Event()
    sender = asyncio.create_task(_keep_sending(first, stop, 100_000))
    try:
        # 1. rolling restart of every node
        for node in sorted(everyone):
            await asyncio.to_thread(kafka3.restart_node, node)
            for p in range(PARTITIONS):
                await wait_isr(kafka3, topic, everyone, partition=p, within=60.0)
            progress.step(f"1. node {node} restarted (SIGTERM + start); every ISR full again")

        # 2. a second monitor joins the group, then leaves
        second = await start_chaos_monitor(
            kafka3, topic, report_topic, group_id=group, instance_id="monitor-b"
        )

        async def owned(instance: RunningMonitor, counts: range) -> bool:
            parts = (await gapwatch_findings(instance, topic)).partitions
            return len(parts) in counts and all(p["restored"] for p in parts)

        joined = second
        await wait_for(lambda: owned(joined, range(1, PARTITIONS)), "monitor-b owns partitions")
        b_parts = len((await gapwatch_findings(second, topic)).partitions)
        progress.step(f"2. monitor-b joined: owns {b_parts} of {PARTITIONS} partitions")
        await asyncio.sleep(2.0)  # monitor-b reads and checkpoints for a while
        await second.stop()
        second = None
        await wait_for(
            lambda: owned(monitor, range(PARTITIONS, PARTITIONS + 1)),
            "monitor-a owns all",
            within=60.0,
        )
        progress.step("2. monitor-b left: monitor-a owns every partition again, restored")

        # 3. the producer restarts with a new epoch
        stop.set()
        await sender
        await first.close()
        restarted = await AppProducer.start(
            kafka3, topic, report_topic, producer_id="s6-service", **settings
        )
        apps.append(restarted)
        assert restarted.stream[1] > first.stream[1]
        stop = asyncio.Event()
        sender = asyncio.create_task(_keep_sending(restarted, stop, 100_000))
        progress.step(f"3. producer restarted: epoch {first.stream[1]} -> {restarted.stream[1]}")
        await asyncio.sleep(3.0)
        stop.set()
        await sender
        for p in range(PARTITIONS):
            assert await restarted.send_and_wait(p) == ACKED
        await restarted.close()
        progress.block("application's send log", "\n".join(a.summary() for a in apps))

        truth = await read_truth(kafka3, topic)
        assert_starts_in_log(apps, truth)
        lines = []
        silent = 0
        for app in apps:
            for p in range(PARTITIONS):
                stream = (p, *app.stream)
                missing = truth.missing(stream, app.sent(p))
                silent += len(missing - app.seqs(p, FAILED))
                lines.append(
                    f"{app.stream[0]}/{app.stream[1]} p{p}: {len(truth.seqs[stream])} of "
                    f"{app.sent(p)}; missing {show_spans(missing)}; "
                    f"duplicates {truth.duplicates(stream) or 'none'}"
                )
        progress.block("the log, read back with a plain consumer", "\n".join(lines))
        assert silent == 0, "the safe configuration lost an acknowledged record"

        findings = await settle_monitor(monitor, topic, truth)
        progress.block("gapwatch gaps", findings.table())
        expected = expected_gaps(apps, truth)
        assert all(told for *_, told in expected)
        assert findings.keys("confirmed") == expected
        assert findings.keys("truncated") == set()
        dups = [
            findings.metric("gapwatch_duplicate_records_total", topic, p) for p in range(PARTITIONS)
        ]
        missing_metric = sum(
            findings.metric("gapwatch_missing_records_total", topic, p) for p in range(PARTITIONS)
        )
        leader_changes = sum(
            findings.metric("gapwatch_leader_changes_total", topic, p) for p in range(PARTITIONS)
        )
        progress.step(
            f"metrics (monitor-a, restored totals): duplicate_records_total per partition "
            f"{[int(d) for d in dups]} (log: {[truth.duplicate_count(p) for p in range(3)]}), "
            f"missing_records_total {missing_metric:g}, leader_changes_total {leader_changes:g}"
        )
        assert dups == [truth.duplicate_count(p) for p in range(PARTITIONS)]
        assert missing_metric == sum(k[4] - k[3] + 1 for k in expected)
        progress.step(
            f"AGREE: {len(findings.keys('confirmed'))} confirmed gaps (all producer_told), "
            f"duplicates as in the log"
        )
    finally:
        stop.set()
        await asyncio.gather(sender, return_exceptions=True)
        for app in apps:
            await app.abort()
        if second is not None:
            await second.stop()
        await monitor.stop()
        await asyncio.to_thread(kafka3.heal)
        progress.step(f"healed; wall time {progress.elapsed:.1f}s")
