"""Scenario 5 of issue 8, the consumer stage: committed but never processed.

A real application process (``apps/verified_consumer.py``) consumes a 2-partition topic
on the 3-node cluster in batches, appends every record it processes to an fsync'd log,
marks it on a ``gapwatch.ConsumerVerifier`` and flushes the verifier after each batch.
It is SIGKILLed at a deterministic point and started again:

* **auto-commit**: killed after aiokafka's auto-commit covered a fetched batch and
  before that batch was processed. The restart resumes after the batch, which is never
  processed: the verifier must report exactly its sequences as confirmed gaps (and the
  sink must deliver them), with no duplicates.
* **manual commit after processing**: killed after a batch was processed (and flushed
  to the verifier) but before its commit. The restart is handed the batch again and
  processes it again: nothing is lost, and the verifier must count exactly that batch's
  records as duplicates.

Truth comes from the log read back with a plain consumer and the application's own
processed log; the verifier's findings from its status file, its metrics, its webhook
deliveries and its checkpoint in Kafka.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from verifier_support import (
    AppProcess,
    Key,
    confirmed_keys,
    findings_summary,
    metric,
    produce,
    progress,
    read_log,
    read_processed,
    to_keys,
    total,
)

from gapwatch.core.config import TrackerConfig
from gapwatch.core.tracker import PartitionTracker
from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic
from gapwatch.testing.receiver import run_receiver
from gapwatch.verifier.config import DEFAULT_CHECKPOINT_TOPIC
from gapwatch.verifier.store import VerifierCheckpoints

pytestmark = pytest.mark.chaos

PARTITIONS = 2
RECORDS = 240
BATCH = 40
STALL_AT_BATCH = 3
GRACE_S = 1.0


def _app_args(bootstrap: str, topic: str, group: str, commit: str, log: Path) -> list[str]:
    return [
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--group",
        group,
        "--commit",
        commit,
        "--processed-log",
        str(log),
        "--batch-size",
        str(BATCH),
        "--grace",
        str(GRACE_S),
    ]


async def _crash_and_restart(
    kafka3: KafkaCluster,
    make_topic: MakeTopic,
    tmp_path: Path,
    *,
    commit: str,
    settled: Any,
    webhook_url: str | None = None,
) -> tuple[str, str, list[Key], Counter[Key], set[Key], dict[str, Any]]:
    """Run the application, SIGKILL it at the stall point, restart it until ``settled``.

    Returns the topic, the group, the log's records, the processed counts, the stalled
    batch and the restarted application's final status.
    """
    started = time.monotonic()
    bootstrap = kafka3.bootstrap_servers
    topic = await make_topic(kafka3, partitions=PARTITIONS, replication_factor=3)
    group = f"app-{commit}-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "processed.jsonl"
    await produce(bootstrap, topic, RECORDS)
    progress(f"{commit}: produced {RECORDS} records to {topic}", started=started)
    args = _app_args(bootstrap, topic, group, commit, log)
    if webhook_url is not None:
        args += ["--webhook-url", webhook_url]

    first = AppProcess(tmp_path, "first", [*args, "--stall-at-batch", str(STALL_AT_BATCH)])
    try:
        await first.wait_for("stall", first.stall_path.exists, within=60)
        first.kill()
    finally:
        first.close()
    stalled = to_keys(json.loads(first.stall_path.read_text()))
    progress(
        f"{commit}: SIGKILLed the application at its stall point "
        f"({len(stalled)} records; processed so far: {sum(read_processed(log).values())})",
        started=started,
    )

    second = AppProcess(tmp_path, "second", args)
    try:
        await second.wait_for("settled findings", lambda: settled(second, log, stalled), within=60)
        final = second.terminate()
    finally:
        second.close()
    progress(f"{commit}: restarted application settled and stopped", started=started)
    progress(f"{commit}: the verifier's findings\n{findings_summary(final)}", started=started)
    truth = await read_log(bootstrap, topic, PARTITIONS)
    processed = read_processed(log)
    progress(
        f"{commit}: the log holds {len(truth)} records ({len(set(truth))} distinct); the "
        f"application processed {len(set(processed))} of them, "
        f"{sum(1 for n in processed.values() if n > 1)} twice; never processed: "
        f"{len(set(truth) - set(processed))}",
        started=started,
    )
    return topic, group, truth, processed, stalled, final


async def test_auto_commit_kill_before_processing_is_reported_as_exactly_the_skipped_records(
    kafka3: KafkaCluster, make_topic: MakeTopic, tmp_path: Path
) -> None:
    """Auto-commit, SIGKILL after the commit and before processing: exact confirmed gaps."""

    def settled(app: AppProcess, log: Path, stalled: set[Key]) -> bool:
        status = app.status()
        if status is None or not status["partitions"]:
            return False
        # Everything the restart will ever be handed is processed, and nothing is open.
        done = sum(read_processed(log).values()) >= RECORDS - len(stalled)
        return done and total(status, "open_gaps") == 0 and total(status, "gaps_confirmed") > 0

    with run_receiver() as receiver:
        topic, group, truth, processed, stalled, final = await _crash_and_restart(
            kafka3, make_topic, tmp_path, commit="auto", settled=settled, webhook_url=receiver.url
        )
        deliveries = [r.json() for r in receiver.received()]

    in_log = set(truth)
    assert len(truth) == len(in_log) == RECORDS, "the log holds every record once"
    never_processed = in_log - set(processed)
    processed_twice = {k: n for k, n in processed.items() if n > 1}
    # The scenario happened as designed: exactly the stalled batch was skipped.
    assert stalled, "the application stalled on a non-empty batch"
    assert never_processed == stalled
    assert processed_twice == {}

    # The verifier reports exactly that, restored from the checkpoint it wrote before the kill.
    assert sorted(confirmed_keys(final)) == sorted(never_processed)
    assert total(final, "missing") == len(never_processed)
    assert total(final, "duplicates") == 0
    assert total(final, "open_gaps") == 0
    assert {p["restored_from"] for p in final["partitions"]} == {"checkpoint"}
    for partition in range(PARTITIONS):
        expected = sum(1 for k in never_processed if k[0] == partition)
        labels = {"group": group, "topic": topic, "partition": str(partition)}
        assert metric(final["metrics"], "gapwatch_missing_records_total", **labels) == expected
        assert metric(final["metrics"], "gapwatch_duplicate_records_total", **labels) == 0

    # The sink delivered the same confirmed gaps, labelled with the application's group.
    delivered = [
        (e["gap"]["partition"], e["gap"]["producer"], e["gap"]["epoch"], seq)
        for body in deliveries
        for e in body["events"]
        if e["kind"] == "confirmed"
        for seq in range(e["gap"]["first_seq"], e["gap"]["last_seq"] + 1)
    ]
    assert sorted(delivered) == sorted(never_processed)
    assert {body["group"] for body in deliveries} == {group}

    # And the state in Kafka says the same: the checkpoint survives the application.
    store = VerifierCheckpoints(
        client_kwargs={"bootstrap_servers": kafka3.bootstrap_servers},
        topic=DEFAULT_CHECKPOINT_TOPIC,
        group_id=group,
        timeout=30,
    )
    await store.start()
    try:
        checkpoints = await store.load([(topic, 0), (topic, 1)])
    finally:
        await store.stop()
    missing = 0
    for (t, p), checkpoint in checkpoints.items():
        tracker = PartitionTracker.restore(
            checkpoint.snapshot, topic=t, partition=p, config=TrackerConfig(ring_size=1024)
        )
        missing += tracker.counters.missing
    assert len(checkpoints) == 2
    assert missing == len(never_processed)


async def test_manual_commit_after_processing_loses_nothing_and_counts_reprocessing_exactly(
    kafka3: KafkaCluster, make_topic: MakeTopic, tmp_path: Path
) -> None:
    """Commit after processing, SIGKILL before the commit: no gap, exact duplicates."""
    settled_since: list[float] = []

    def settled(app: AppProcess, log: Path, stalled: set[Key]) -> bool:
        status = app.status()
        if status is None or not status["partitions"]:
            return False
        done = sum(read_processed(log).values()) >= RECORDS + len(stalled)
        if not done or total(status, "duplicates") < len(stalled):
            return False
        # Give the confirmation rule time to act (grace plus a few rounds) before
        # concluding that nothing will be reported.
        settled_since.append(time.monotonic())
        return time.monotonic() - settled_since[0] > GRACE_S + 1.5

    topic, group, truth, processed, stalled, final = await _crash_and_restart(
        kafka3, make_topic, tmp_path, commit="manual", settled=settled
    )

    in_log = set(truth)
    assert len(truth) == len(in_log) == RECORDS
    never_processed = in_log - set(processed)
    reprocessed = sum(n - 1 for n in processed.values())
    assert stalled
    assert never_processed == set()
    assert {k for k, n in processed.items() if n > 1} == stalled
    assert reprocessed == len(stalled)

    assert total(final, "duplicates") == reprocessed
    assert total(final, "missing") == 0
    assert final["gaps"] == []
    assert {p["restored_from"] for p in final["partitions"]} == {"checkpoint"}
    for partition in range(PARTITIONS):
        expected = sum(n - 1 for k, n in processed.items() if k[0] == partition)
        labels = {"group": group, "topic": topic, "partition": str(partition)}
        assert metric(final["metrics"], "gapwatch_duplicate_records_total", **labels) == expected
        assert metric(final["metrics"], "gapwatch_missing_records_total", **labels) == 0
