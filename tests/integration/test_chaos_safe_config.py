"""Scenario 4, the safe configuration: the faults of scenarios 1-3 lose nothing.

Replication factor 3, ``min.insync.replicas=2``, ``unclean.leader.election.enable=false``,
an idempotent ``StampedProducer`` with ``acks=all``, sending steadily while, in turn:

a. the partition leader is SIGKILLed and restarted (scenario 1's fault);
b. a follower is paused briefly (still in the ISR), the leader SIGKILLed, the follower
   resumed at once (scenario 2's);
c. a follower is paused until fenced out of the ISR, the leader SIGKILLed, the follower
   resumed (scenario 3's).

With ``acks=all`` a record is acknowledged only once every ISR member (at least two) has
it, and only ISR members can lead, so no acknowledged record can vanish; idempotence stops
retries from duplicating or reordering. Truth: nothing the application was told succeeded
is missing, and gapwatch reports no loss except, as ``producer_told``, sends the
application saw fail (aiokafka's idempotent producer retries a batch until it is written
rather than expiring it, so in practice there are none).
"""

from __future__ import annotations

import asyncio

import pytest
from chaos_support import (
    ACKED,
    FAILED,
    AppProducer,
    IsrProbe,
    Progress,
    assert_starts_in_log,
    expected_gaps,
    read_truth,
    settle_monitor,
    show_spans,
    start_chaos_monitor,
    wait_isr,
)

from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.chaos

RATE_INTERVAL_S = 0.01


async def _keep_sending(app: AppProducer, stop: asyncio.Event, limit: int) -> None:
    for _ in range(limit):
        if stop.is_set():
            return
        await app.send()
        await asyncio.sleep(RATE_INTERVAL_S)


async def test_scenario_4_safe_configuration_loses_nothing_silently(
    kafka3: KafkaCluster, make_topic: MakeTopic
) -> None:
    """Under the three faults, every acknowledged record is in the log exactly once, and
    gapwatch's gaps are exactly the failed sends missing from the log, all producer_told."""
    progress = Progress("scenario-4 safe config")
    topic = await make_topic(
        kafka3,
        1,
        3,
        {"min.insync.replicas": "2", "unclean.leader.election.enable": "false"},
    )
    report_topic = f"{topic}-reports"
    everyone = set(kafka3.node_ids)
    await wait_isr(kafka3, topic, everyone)
    progress.step(f"topic {topic}: RF 3, min ISR 2, unclean off; idempotent acks=all")
    app = await AppProducer.start(
        kafka3,
        topic,
        report_topic,
        producer_id="s4-idempotent",
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=5000,
    )
    monitor = await start_chaos_monitor(kafka3, topic, report_topic)
    stop = asyncio.Event()
    sender = asyncio.create_task(_keep_sending(app, stop, 20_000))
    try:

        async def heal(killed: int) -> None:
            await asyncio.to_thread(kafka3.restart_node, killed)
            await wait_isr(kafka3, topic, everyone, within=60.0)

        # a. the leader dies
        leader = (await kafka3.wait_for_leader(topic, 0)).leader
        assert leader is not None
        await asyncio.sleep(1.0)
        assert kafka3.kill_node(leader)
        new = await kafka3.wait_for_leader(topic, 0, exclude=[leader], timeout_s=60.0)
        progress.step(f"a. SIGKILL leader {leader}: broker {new.leader} leads, ISR {new.isr}")
        await heal(leader)
        progress.step(f"a. broker {leader} restarted, ISR full again")

        # b. a follower paused briefly, the leader dies, the follower resumes
        state = await kafka3.wait_for_leader(topic, 0)
        assert state.leader is not None
        leader = state.leader
        follower = next(r for r in state.replicas if r != leader)
        async with IsrProbe(kafka3, leader) as probe:
            assert kafka3.pause_node(follower)
            await asyncio.sleep(0.5)
            isr = await probe.isr(topic)
        assert kafka3.kill_node(leader)
        assert kafka3.resume_node(follower)
        assert follower in isr, "the short pause shrank the ISR"
        new = await kafka3.wait_for_leader(topic, 0, exclude=[leader], timeout_s=60.0)
        progress.step(
            f"b. follower {follower} paused 0.5s (ISR {sorted(isr)}), leader {leader} killed: "
            f"broker {new.leader} leads"
        )
        await heal(leader)
        progress.step(f"b. broker {leader} restarted, ISR full again")

        # c. a follower fenced out of the ISR, the leader dies, the follower resumes
        state = await kafka3.wait_for_leader(topic, 0)
        assert state.leader is not None
        leader = state.leader
        follower = next(r for r in state.replicas if r != leader)
        assert kafka3.pause_node(follower)
        await wait_isr(kafka3, topic, everyone - {follower}, within=30.0)
        assert kafka3.kill_node(leader)
        assert kafka3.resume_node(follower)
        new = await kafka3.wait_for_leader(topic, 0, exclude=[leader], timeout_s=60.0)
        assert new.leader != follower, "an out-of-sync replica was elected"
        progress.step(
            f"c. follower {follower} fenced out of the ISR, leader {leader} killed: "
            f"in-sync broker {new.leader} leads"
        )
        await heal(leader)
        progress.step(f"c. broker {leader} restarted, ISR full again")

        await asyncio.sleep(1.0)
        stop.set()
        await sender
        for _ in range(10):
            assert await app.send_and_wait() == ACKED
        await app.close()
        progress.block("application's send log", app.summary())

        truth = await read_truth(kafka3, topic)
        stream = (0, *app.stream)
        missing = truth.missing(stream, app.sent())
        failed = app.seqs(0, FAILED)
        progress.block(
            "the log, read back with a plain consumer",
            f"{len(truth.seqs[stream])} of {app.sent()} records; missing {show_spans(missing)}"
            f" (acknowledged among them: {show_spans(missing & app.seqs(0, ACKED))}); "
            f"duplicates {truth.duplicates(stream) or 'none'}; in order: "
            f"{truth.is_ordered(stream)}",
        )
        assert_starts_in_log([app], truth)
        assert missing <= failed, "an acknowledged record is missing: silent loss"
        assert truth.duplicates(stream) == {}
        assert truth.is_ordered(stream)

        findings = await settle_monitor(monitor, topic, truth)
        progress.block("gapwatch gaps", findings.table())
        expected = expected_gaps([app], truth)
        assert all(told for *_, told in expected)
        assert findings.keys("confirmed") == expected
        assert findings.keys("truncated") == set()
        metrics = {
            name: findings.metric(f"gapwatch_{name}", topic, 0)
            for name in (
                "missing_records_total",
                "duplicate_records_total",
                "truncated_records_total",
                "leader_changes_total",
            )
        }
        progress.step("metrics: " + ", ".join(f"{k}={v:g}" for k, v in metrics.items()))
        assert metrics["missing_records_total"] == len(missing)
        assert metrics["duplicate_records_total"] == 0
        assert metrics["truncated_records_total"] == 0
        assert metrics["leader_changes_total"] >= 3
        progress.step(
            f"AGREE: zero silent loss; {len(failed)} failed sends, {len(missing)} missing, "
            f"{len(expected)} producer_told gaps"
        )
    finally:
        stop.set()
        await asyncio.gather(sender, return_exceptions=True)
        await app.abort()
        await monitor.stop()
        await asyncio.to_thread(kafka3.heal)
        progress.step(f"healed; wall time {progress.elapsed:.1f}s")
