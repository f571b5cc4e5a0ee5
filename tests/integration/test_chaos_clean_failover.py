"""Scenario 2, broker stage: records acknowledged by a leader alone vanish on a *clean*
failover, and gapwatch reports exactly them as silent loss.

Replication factor 2, ``min.insync.replicas=1``, ``acks=1``. The follower is paused
(SIGSTOP) for well under the test bed's 3 s ``broker.session.timeout.ms`` and 5 s
``replica.lag.time.max.ms``, so it stays in the ISR. The leader acknowledges the records
sent meanwhile on its own (``acks=1`` needs nobody else), but the high watermark cannot pass
a lagging ISR member, so no consumer sees them. SIGKILL the leader, resume the follower at
once: it is in the ISR, so it becomes leader cleanly, without the records. No unclean
election and no truncation any consumer could notice: only the producer's acknowledgements
say those sequences ever existed.
"""

from __future__ import annotations

import asyncio

import pytest
from chaos_support import (
    ACKED,
    AppProducer,
    IsrProbe,
    Progress,
    assert_starts_in_log,
    expected_gaps,
    gap_json,
    monitor_partition,
    read_truth,
    settle_monitor,
    show_spans,
    spans,
    start_chaos_monitor,
    wait_isr,
    wait_monitor_position,
)

from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.chaos

BEFORE, DURING, AFTER = 20, 10, 10


async def test_scenario_2_acked_records_lost_on_clean_failover(
    kafka3: KafkaCluster, make_topic: MakeTopic
) -> None:
    """Exactly the records the old leader acknowledged alone are missing from the log, and
    gapwatch confirms exactly those sequences, not ``producer_told`` (the application was
    told they were written)."""
    progress = Progress("scenario-2 clean failover")
    topic = await make_topic(kafka3, 1, 2, {"min.insync.replicas": "1"})
    report_topic = f"{topic}-reports"
    state = await kafka3.wait_for_leader(topic, 0)
    assert state.leader is not None
    leader = state.leader
    (follower,) = (r for r in state.replicas if r != leader)
    progress.step(f"topic {topic}: RF 2, min ISR 1; leader {leader}, follower {follower}")
    await wait_isr(kafka3, topic, {leader, follower})
    app = await AppProducer.start(
        kafka3, topic, report_topic, producer_id="s2-acks1", acks=1, request_timeout_ms=10_000
    )
    monitor = await start_chaos_monitor(kafka3, topic, report_topic)
    try:
        for _ in range(BEFORE):
            assert await app.send_and_wait() == ACKED
        await wait_monitor_position(monitor, topic, BEFORE)
        progress.step(f"{BEFORE} records replicated and read by the monitor")

        async with IsrProbe(kafka3, leader) as probe:
            assert await probe.isr(topic) == {leader, follower}
            assert kafka3.pause_node(follower)
            paused_at = progress.elapsed
            for _ in range(DURING):
                assert await app.send_and_wait() == ACKED
            isr = await probe.isr(topic)
            window = progress.elapsed - paused_at
        progress.step(
            f"follower {follower} paused {window:.2f}s: {DURING} more records acked by "
            f"leader {leader} alone; ISR still {sorted(isr)}"
        )
        assert isr == {leader, follower}, "the pause was long enough to shrink the ISR"
        seen = await monitor_partition(monitor, topic)
        assert seen is not None
        assert seen["position"] == BEFORE, "the high watermark moved"

        assert kafka3.kill_node(leader)
        assert kafka3.resume_node(follower)
        progress.step(f"SIGKILL leader {leader}, SIGCONT follower {follower}")
        elected = await kafka3.wait_for_leader(topic, 0, exclude=[leader], timeout_s=60.0)
        assert elected.leader == follower
        progress.step(f"follower {follower} leads (clean election; ISR {sorted(elected.isr)})")

        for _ in range(AFTER):
            assert await app.send_and_wait() == ACKED
        await app.close()
        progress.block("application's send log", app.summary())

        truth = await read_truth(kafka3, topic)
        stream = (0, *app.stream)
        sent = BEFORE + DURING + AFTER
        lost = truth.missing(stream, sent)
        progress.block(
            "the log, read back with a plain consumer",
            f"{len(truth.seqs[stream])} records; missing {show_spans(lost)} "
            f"(all acknowledged: {lost <= app.seqs(0, ACKED)}); "
            f"duplicates {truth.duplicates(stream) or 'none'}",
        )
        # The follower's fetch request was parked at the leader when it was paused; the
        # leader answers it with the first record appended, into the paused JVM's socket
        # buffer, and the follower appends that record once resumed. Every later record
        # acknowledged during the pause is lost.
        during_seqs = set(range(BEFORE, BEFORE + DURING))
        assert lost, "nothing was lost: the failover was not exercised"
        assert lost <= during_seqs
        assert lost <= app.seqs(0, ACKED)
        assert len(spans(lost)) == 1
        assert max(lost) == BEFORE + DURING - 1
        assert len(lost) >= DURING - 2
        assert_starts_in_log([app], truth)

        findings = await settle_monitor(monitor, topic, truth)
        progress.block("gapwatch gaps", findings.table())
        progress.block("GET /gaps (first gap)", gap_json(findings, 1))
        expected = expected_gaps([app], truth)
        assert expected == {(0, *app.stream, min(lost), max(lost), False)}
        assert findings.keys("confirmed") == expected
        assert {g["cause"] for g in findings.gaps} == {"sequence"}
        assert findings.keys("truncated") == set()
        missing = findings.metric("gapwatch_missing_records_total", topic, 0)
        dups = findings.metric("gapwatch_duplicate_records_total", topic, 0)
        truncated = findings.metric("gapwatch_truncated_records_total", topic, 0)
        progress.step(
            f"metrics: missing_records_total={missing:g} duplicate_records_total={dups:g} "
            f"truncated_records_total={truncated:g}"
        )
        assert (missing, dups, truncated) == (len(lost), 0, 0)
        progress.step(
            f"AGREE: gapwatch confirmed exactly the {len(lost)} acknowledged, lost records"
        )
    finally:
        await app.abort()
        await monitor.stop()
        kafka3.resume_node(follower)
        await asyncio.to_thread(kafka3.restart_node, leader)
        progress.step(f"healed; wall time {progress.elapsed:.1f}s")
