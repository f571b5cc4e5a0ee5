"""Scenario 1, producer stage: records that never reached a broker, and whether the
application was told.

One partition with replication factor 1 on the 3-node cluster, so a SIGKILL of its leader
loses nothing that was written (the page cache outlives the process; the restarted broker
recovers its log) and every missing record was lost *before* the broker: in the client,
in a socket to a dying broker, or in a batch that expired while the partition had no
leader. Two applications write to it at once:

* ``acks=0``: fire and forget. Whatever was in flight when the broker died is gone, and
  its delivery futures still said "sent".
* ``acks=1`` with an application that ignores send errors: its sends fail with an error
  while the partition has no leader (``request_timeout_ms`` bounds a batch's life), the
  application moves on, and those sequences are missing.

gapwatch must confirm exactly the missing sequences and mark each gap ``producer_told``
exactly when the application's send of it failed.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from chaos_support import (
    ACKED,
    FAILED,
    SENT,
    AppProducer,
    Progress,
    assert_bracketed,
    expected_gaps,
    gap_json,
    mixed_gaps,
    read_truth,
    settle_monitor,
    show_spans,
    start_chaos_monitor,
    wait_for,
    wait_monitor_position,
)

from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.chaos

WARM, COOL = 20, 10
RATE_INTERVAL_S = 0.01  # about 100 records/s per application
# Batches live this long without a leader before their sends fail (aiokafka's batch TTL).
REQUEST_TIMEOUT_MS = 2000


async def _keep_sending(app: AppProducer, stop: asyncio.Event, limit: int) -> None:
    """Send until ``stop`` (bounded by ``limit`` records), ignoring every outcome."""
    for _ in range(limit):
        if stop.is_set():
            return
        await app.send()
        await asyncio.sleep(RATE_INTERVAL_S)


async def test_scenario_1_producer_stage_loss_is_reported_with_producer_told(
    kafka3: KafkaCluster, make_topic: MakeTopic
) -> None:
    """Records lost before the broker (acks=0 in flight, acks=1 failed and ignored) are
    confirmed exactly, each gap ``producer_told`` exactly when the application saw the
    send fail."""
    progress = Progress("scenario-1 producer stage")
    topic = await make_topic(kafka3, 1, 1)
    report_topic = f"{topic}-reports"
    state = await kafka3.wait_for_leader(topic, 0)
    assert state.leader is not None
    leader = state.leader
    progress.step(f"topic {topic}: RF 1 on broker {leader}")
    common = {"request_timeout_ms": REQUEST_TIMEOUT_MS, "retry_backoff_ms": 100}
    # Producers first: they create the report topic, which the monitor then finds at start.
    fire = await AppProducer.start(
        kafka3, topic, report_topic, producer_id="s1-acks0", acks=0, **common
    )
    careless = await AppProducer.start(
        kafka3, topic, report_topic, producer_id="s1-acks1-ignores-errors", acks=1, **common
    )
    apps = [fire, careless]
    monitor = await start_chaos_monitor(kafka3, topic, report_topic)
    try:
        for _ in range(WARM):
            await fire.send_and_wait()
            assert await careless.send_and_wait() == ACKED
        await wait_monitor_position(monitor, topic, 2 * WARM)
        progress.step(f"{2 * WARM} records written and read; both applications keep sending")

        stop = asyncio.Event()
        senders = [asyncio.create_task(_keep_sending(a, stop, 5000)) for a in apps]
        await asyncio.sleep(1.0)
        assert kafka3.kill_node(leader)
        killed_at = time.monotonic()
        progress.step(f"SIGKILL broker {leader}, the partition's only replica")

        async def leaderless() -> bool:
            return (await kafka3.describe_partition(topic, 0)).leader is None

        await wait_for(leaderless, "partition without a leader", within=30.0)
        progress.step(f"partition has no leader ({time.monotonic() - killed_at:.1f}s after kill)")
        # Long enough without a leader that queued batches outlive their TTL.
        await asyncio.sleep(REQUEST_TIMEOUT_MS / 1000 + 0.5)
        await asyncio.to_thread(kafka3.restart_node, leader)
        await kafka3.wait_for_leader(topic, 0, timeout_s=60.0)
        progress.step(f"broker {leader} restarted and leads ({time.monotonic() - killed_at:.1f}s)")
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*senders)

        for _ in range(COOL):
            await fire.send_and_wait()
            assert await careless.send_and_wait() == ACKED
        for app in apps:
            await app.close()
        progress.block("applications' send logs", "\n".join(a.summary() for a in apps))

        truth = await read_truth(kafka3, topic)
        lines = []
        for app in apps:
            stream = (0, *app.stream)
            sent = app.sent()
            missing = truth.missing(stream, sent)
            failed = app.seqs(0, FAILED)
            lines.append(
                f"{app.stream[0]}: {len(truth.seqs[stream])} of {sent} in the log; "
                f"missing {show_spans(missing)}; of those failed-and-told "
                f"{show_spans(missing & failed)}, silently lost {show_spans(missing - failed)}; "
                f"failed yet written {show_spans(failed - missing)}; "
                f"duplicates {truth.duplicates(stream) or 'none'}"
            )
        progress.block("the log, read back with a plain consumer", "\n".join(lines))
        assert_bracketed(apps, truth)
        # The scenario must exercise both kinds of producer-stage loss.
        careless_missing = truth.missing((0, *careless.stream), careless.sent())
        assert careless_missing, "the acks=1 application lost nothing"
        assert careless_missing <= careless.seqs(0, FAILED), "acks=1 lost an acknowledged record"
        fire_missing = truth.missing((0, *fire.stream), fire.sent())
        assert fire_missing, "the acks=0 application lost nothing"
        assert fire.seqs(0, SENT) & fire_missing, "no acks=0 record was lost silently"

        findings = await settle_monitor(monitor, topic, truth)
        progress.block("gapwatch gaps", findings.table())
        progress.block("GET /gaps (first gaps)", gap_json(findings, 2))
        expected = expected_gaps(apps, truth)
        mixed = mixed_gaps(apps, truth)
        progress.step(f"missing runs mixing failed and 'successful' sends: {mixed or 'none'}")
        assert findings.keys("confirmed") == expected
        missing_total = sum(len(truth.missing((0, *a.stream), a.sent())) for a in apps)
        metric_missing = findings.metric("gapwatch_missing_records_total", topic, 0)
        metric_dups = findings.metric("gapwatch_duplicate_records_total", topic, 0)
        progress.step(
            f"metrics: missing_records_total={metric_missing:g} (log: {missing_total}), "
            f"duplicate_records_total={metric_dups:g} (log: {truth.duplicate_count(0)}), "
            f"producer_reports_read_total={findings.total('gapwatch_producer_reports_read_total'):g}"
        )
        assert metric_missing == missing_total
        assert metric_dups == truth.duplicate_count(0)
        assert mixed == [], "a gap holds both told and silent loss; producer_told is per gap"
        progress.step(
            f"AGREE: {len(expected)} gaps, {missing_total} records, producer_told as the apps saw"
        )
    finally:
        for app in apps:
            await app.abort()
        await monitor.stop()
        await asyncio.to_thread(kafka3.heal)
        progress.step(f"healed; wall time {progress.elapsed:.1f}s")
