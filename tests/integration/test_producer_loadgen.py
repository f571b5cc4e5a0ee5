"""`gapwatch loadgen` end to end: its JSON truth equals what a plain consumer reads."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter

import pytest
from producer_support import latest_reports, read_stamped

from gapwatch.testing.kafka import KafkaCluster
from gapwatch.testing.pytest_plugin import MakeTopic

pytestmark = pytest.mark.kafka


class TestLoadgen:
    async def test_truth_matches_the_log(self, kafka: KafkaCluster, make_topic: MakeTopic) -> None:
        """Dropped sequences are absent, duplicated ones appear twice, reordered ones come
        after a greater sequence (and no others do), and only the clean producer left
        final reports."""
        topic = await make_topic(partitions=3)
        report_topic = f"{topic}-reports"
        argv = [
            sys.executable, "-m", "gapwatch", "loadgen",
            "--bootstrap-servers", kafka.bootstrap_servers,
            "--topic", topic, "--count", "900", "--rate", "0", "--keys", "25",
            "--producers", "2", "--drop", "0.05", "--duplicate", "0.05", "--reorder", "0.05",
            "--crash", "1", "--seed", "3", "--report-topic", report_topic,
            "--report-interval", "0.5", "--producer-prefix", "lg",
        ]  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode == 0, stderr.decode()
        truth = json.loads(stdout)
        assert truth["totals"]["dropped"] > 0
        assert truth["totals"]["duplicated"] > 0
        assert truth["totals"]["reordered"] > 0
        assert truth["run"]["records_attempted"] == 900

        records = await read_stamped(kafka.bootstrap_servers, topic)
        log: dict[tuple[int, str, int], list[int]] = {}
        for r in records:
            log.setdefault((r.partition, r.producer, r.epoch), []).append(r.seq)
        assert len(log) == len(truth["streams"])
        for stream in truth["streams"]:
            seqs = log[(stream["partition"], stream["producer"], stream["epoch"])]
            failed = {s for a, b in stream["failed"] for s in range(a, b + 1)}
            expected = Counter(
                s for s in range(stream["last_seq"] + 1) if s not in stream["dropped"]
            )
            expected.update(stream["duplicated"])
            for seq in failed:
                expected.pop(seq, None)
            assert Counter(seqs) == expected
            highest = -1
            after_greater = set()
            for seq in seqs:
                if seq < highest:
                    after_greater.add(seq)
                highest = max(highest, seq)
            assert after_greater == set(stream["reordered"])
            assert stream["crashed"] == (stream["producer"] == "lg-0")

        reports = await latest_reports(kafka.bootstrap_servers, report_topic)
        finals = {key[2] for key, report in reports.items() if report.final}
        assert finals == {"lg-1"}
