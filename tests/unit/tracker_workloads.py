"""Deterministic random workloads for the tracker, and a runner that records what it said.

A seed gives a workload: a tracker config and a list of facts (stamped records in order,
jumps, late fills, duplicates, resets, epochs, unstamped and malformed records,
confirmation facts, ticks, producer reports, truncations, skips, divergence checks, and
snapshot/restore points). The generator simulates producers and a partition log on its
own, never asking the tracker, so the same seed gives the same facts whatever the
tracker's code. :func:`run_workload` feeds them to a tracker and returns every answer as
plain JSON data, so a refactored tracker can be compared with answers recorded from the
code before it (``test_tracker_differential.py``, ``record_tracker_workloads.py``).
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import json
import random
from collections.abc import Callable
from typing import Any

from gapwatch.core.config import TrackerConfig
from gapwatch.core.model import ProducerReport
from gapwatch.core.tracker import PartitionTracker
from gapwatch.core.wire import Stamp

TOPIC = "orders"
PARTITION = 3
GENERATOR_VERSION = 1
"""Bump when the generator changes what a seed gives (then re-record, see the script)."""

Fact = list[Any]
"""One fact as JSON data: ``[kind, *arguments]``."""


@dataclasses.dataclass
class _Producer:
    name: str
    epoch: int
    next_seq: int
    # Sequences skipped by a jump, not yet written: a late fill writes one of them.
    held: list[int]
    # (seq, timestamp) of records written in this epoch: a duplicate resends one.
    sent: list[tuple[int, int]]


@dataclasses.dataclass
class Workload:
    """A tracker config (as keyword arguments) and the facts to feed it."""

    seed: int
    config: dict[str, Any]
    facts: list[Fact]

    def digest(self) -> str:
        """A short hash of the config and facts: tells a changed generator apart."""
        text = json.dumps([self.config, self.facts], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Generator:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rnd = rnd = random.Random(seed)
        small = rnd.random() < 0.5
        grace = rnd.choice([0.0, 5.0, 10.0, 30.0])
        self.config: dict[str, Any] = {
            "grace_period": grace,
            "idle_eviction": grace + rnd.choice([20.0, 100.0, 5000.0]),
            "max_streams": rnd.choice([1, 2, 3]) if small else 1000,
            "ring_size": rnd.choice([4, 8, 16, 32]) if small else rnd.choice([256, 4096]),
            "max_tracked_gaps": rnd.choice([1, 2, 4]) if small else 1000,
            "max_closed_gaps": rnd.choice([0, 1, 3]) if small else 100,
        }
        self.facts: list[Fact] = []
        self.offset = 0
        self.now = 1_000.0
        self.ts = 1_000_000
        # The partition log as written: offset -> [producer, epoch, seq] or None (unstamped).
        self.log: dict[int, list[Any] | None] = {}
        self.producers: list[_Producer] = []
        self.names = [f"p{k}" for k in range(rnd.choice([1, 2, 3, 5]))]

    # --- the log ---------------------------------------------------------------------

    def write(
        self, p: _Producer, seq: int, ts: int | None = None, epoch: int | None = None
    ) -> None:
        self.ts += self.rnd.choice([0, 1, 1, 2, 50])
        stamp_ts = self.ts if ts is None else ts
        ep = p.epoch if epoch is None else epoch
        via = "observe" if self.rnd.random() < 0.5 else "fields"
        self.facts.append([via, self.offset, stamp_ts, p.name, ep, seq, self.now])
        self.log[self.offset] = [p.name, ep, seq]
        self.offset += 1
        if epoch is None:
            p.sent.append((seq, stamp_ts))
            del p.sent[:-64]

    def producer(self) -> _Producer:
        rnd = self.rnd
        unused = [n for n in self.names if all(p.name != n for p in self.producers)]
        if unused and (not self.producers or rnd.random() < 0.2):
            start = 0 if rnd.random() < 0.5 else rnd.randrange(1, 60)
            p = _Producer(unused[0], rnd.randrange(0, 3), start, [], [])
            self.producers.append(p)
            return p
        return rnd.choice(self.producers)

    # --- actions ---------------------------------------------------------------------

    def in_order(self) -> None:
        p = self.producer()
        for _ in range(self.rnd.randrange(1, 12)):
            self.write(p, p.next_seq)
            p.next_seq += 1

    def jump(self) -> None:
        p = self.producer()
        skip = self.rnd.randrange(1, 6)
        p.held.extend(range(p.next_seq, p.next_seq + skip))
        p.next_seq += skip
        self.write(p, p.next_seq)
        p.next_seq += 1

    def late(self) -> None:
        p = self.producer()
        if not p.held:
            return self.in_order()
        seq = p.held.pop(self.rnd.randrange(len(p.held)))
        self.write(p, seq, ts=self.ts - self.rnd.randrange(0, 100))
        return None

    def duplicate(self) -> None:
        p = self.producer()
        if not p.sent:
            return self.in_order()
        seq, ts = self.rnd.choice(p.sent)
        self.write(p, seq, ts=ts)
        return None

    def reset(self) -> None:
        p = self.producer()
        p.held.clear()
        p.sent.clear()
        self.ts += 10
        self.write(p, 0)
        p.next_seq = 1

    def old_zero(self) -> None:
        # seq 0 again with an old timestamp: a retried first batch, not a restart.
        p = self.producer()
        self.write(p, 0, ts=self.ts - 1_000)

    def new_epoch(self) -> None:
        p = self.producer()
        p.epoch += 1
        p.held.clear()
        p.sent.clear()
        p.next_seq = 0 if self.rnd.random() < 0.6 else self.rnd.randrange(1, 5)
        self.write(p, p.next_seq)
        p.next_seq += 1

    def old_epoch(self) -> None:
        p = self.producer()
        self.write(p, self.rnd.randrange(0, p.next_seq + 2), epoch=max(0, p.epoch - 1))

    def untrusted(self) -> None:
        if self.rnd.random() < 0.5:
            self.facts.append(["unstamped"])
        else:
            self.facts.append(["malformed", "bad header"])
        # Unstamped and malformed records still take an offset in the log.
        self.log[self.offset] = None
        self.offset += 1

    def advance(self) -> None:
        self.now += self.rnd.choice([0.5, 1.0, 3.0, 7.0, 15.0, 40.0, 200.0])
        if self.rnd.random() < 0.7:
            self.facts.append(["tick", self.now])

    def caught_up(self) -> None:
        rnd = self.rnd
        read = self.offset - (0 if rnd.random() < 0.7 else rnd.randrange(0, 3))
        hwm = self.offset + (0 if rnd.random() < 0.7 else rnd.randrange(0, 3))
        observed = self.now - (0 if rnd.random() < 0.7 else rnd.randrange(0, 20))
        self.facts.append(["caught_up", max(0, read), hwm, observed])

    def report(self) -> None:
        rnd = self.rnd
        if self.producers and rnd.random() < 0.8:
            p = rnd.choice(self.producers)
            name, epoch, top = p.name, p.epoch, p.next_seq
            if rnd.random() < 0.2:
                epoch += rnd.choice([-1, 1])
        else:
            name, epoch, top = rnd.choice([*self.names, "stranger"]), rnd.randrange(0, 3), 20
        extra = rnd.randrange(0, 6)
        assigned = None if rnd.random() < 0.1 else max(0, top - 1 + extra)
        acked = None
        if assigned is not None and rnd.random() < 0.8:
            acked = max(0, assigned - rnd.randrange(0, 6))
        failed: list[list[int]] = []
        if assigned is not None:
            for _ in range(rnd.choice([0, 0, 1, 2])):
                first = rnd.randrange(0, assigned + 1)
                failed.append([first, min(assigned, first + rnd.randrange(0, 4))])
            failed.sort()
        topic, partition = TOPIC, PARTITION
        if rnd.random() < 0.05:
            partition += 1
        final = rnd.random() < 0.3
        self.facts.append(
            ["report", name, epoch, topic, partition, assigned, acked, failed, final, self.now]
        )

    def truncate(self) -> None:
        if self.offset == 0:
            return
        new_end = max(0, self.offset - self.rnd.randrange(0, 12))
        self.facts.append(["truncated", new_end, self.now])
        for o in range(new_end, self.offset):
            self.log.pop(o, None)
        self.offset = new_end

    def skip(self) -> None:
        count = self.rnd.randrange(1, 8)
        self.facts.append(["skipped", self.offset, self.offset + count - 1, self.now])
        self.offset += count
        # Records written then deleted by retention before they were read.
        for p in self.producers:
            if self.rnd.random() < 0.5:
                p.next_seq += self.rnd.randrange(0, 5)

    def divergence(self) -> None:
        rnd = self.rnd
        if self.offset == 0:
            return
        # The re-read log: what was written, changed from some offset on (or not at all).
        start = max(0, self.offset - rnd.randrange(1, 40))
        end = self.offset - (0 if rnd.random() < 0.6 else rnd.randrange(0, 4))
        change_at = None if rnd.random() < 0.3 else rnd.randrange(start, self.offset)
        log: list[list[Any]] = []
        for o in range(start, end):
            if o not in self.log:
                continue
            stamp = self.log[o]
            if change_at is not None and o >= change_at and stamp is not None:
                stamp = [stamp[0], stamp[1], stamp[2] + 1000]
            log.append([o, stamp])
        before = None if rnd.random() < 0.5 else rnd.randrange(0, self.offset + 1)
        self.facts.append(["diverge", start, max(start, end), log, before, self.now])

    def snapshot(self) -> None:
        self.facts.append(["snapshot"])

    def generate(self) -> Workload:
        rnd = self.rnd
        actions: list[tuple[Callable[[], None], int]] = [
            (self.in_order, 30),
            (self.jump, 8),
            (self.late, 8),
            (self.duplicate, 4),
            (self.reset, 2),
            (self.old_zero, 1),
            (self.new_epoch, 2),
            (self.old_epoch, 1),
            (self.untrusted, 2),
            (self.advance, 12),
            (self.caught_up, 8),
            (self.report, 6),
            (self.truncate, 1),
            (self.skip, 1),
            (self.divergence, 1),
            (self.snapshot, 2),
        ]
        choices = [a for a, _ in actions]
        weights = [w for _, w in actions]
        self.in_order()
        for _ in range(rnd.randrange(20, 120)):
            rnd.choices(choices, weights)[0]()
        self.snapshot()
        return Workload(self.seed, self.config, self.facts)


def generate(seed: int) -> Workload:
    """The workload of ``seed`` (always the same facts for the same seed)."""
    return _Generator(seed).generate()


# --- recording what a tracker says -----------------------------------------------------


def to_data(value: Any) -> Any:
    """An event, gap, stream info (or anything inside one) as plain JSON data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"type": type(value).__name__}
        for f in dataclasses.fields(value):
            out[f.name] = to_data(getattr(value, f.name))
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [to_data(v) for v in value]
    return value


def observable_state(tracker: PartitionTracker) -> dict[str, Any]:
    """What the tracker shows from outside: counters, gaps, streams, open gaps, probes."""
    newest = tracker.newest_read()
    return {
        "counters": tracker.counters.as_dict(),
        "gaps": to_data(tracker.gaps()),
        "open": sorted(g.id for g in tracker.open_gaps()),
        "streams": to_data(tracker.streams()),
        "verify_from": tracker.verify_from(),
        "newest_read": None if newest is None else [newest[0], to_data(newest[1])],
    }


def _events(events: Any) -> list[Any]:
    return [to_data(e) for e in events]


def apply_fact(tracker: PartitionTracker, fact: Fact, config: TrackerConfig) -> tuple[Any, Any]:
    """Feed one fact; returns (the answer as data, the tracker to continue with)."""
    kind = fact[0]
    if kind == "observe":
        _, offset, ts, producer, epoch, seq, now = fact
        return _events(tracker.observe(offset, ts, Stamp(producer, epoch, seq), now)), tracker
    if kind == "fields":
        _, offset, ts, producer, epoch, seq, now = fact
        return _events(tracker.observe_fields(offset, ts, producer, epoch, seq, now)), tracker
    if kind == "unstamped":
        tracker.observe_unstamped()
        return None, tracker
    if kind == "malformed":
        tracker.observe_malformed(fact[1])
        return None, tracker
    if kind == "tick":
        return _events(tracker.tick(fact[1])), tracker
    if kind == "caught_up":
        _, read, hwm, observed = fact
        events = tracker.note_read_position(
            read_offset=read, high_watermark=hwm, observed_at=observed
        )
        return _events(events), tracker
    if kind == "report":
        _, name, epoch, topic, partition, assigned, acked, failed, final, now = fact
        report = ProducerReport(
            producer=name,
            epoch=epoch,
            topic=topic,
            partition=partition,
            highest_assigned=assigned,
            highest_acked=acked,
            failed=tuple((a, b) for a, b in failed),
            final=final,
        )
        return _events(tracker.apply_producer_report(report, now)), tracker
    if kind == "truncated":
        return _events(tracker.log_truncated(fact[1], fact[2])), tracker
    if kind == "skipped":
        return _events(tracker.records_skipped(fact[1], fact[2], fact[3])), tracker
    if kind == "diverge":
        _, start, end, log, before, now = fact
        records = [(o, None if s is None else Stamp(*s)) for o, s in log]
        probe = tracker.newest_read(before)
        found = tracker.find_divergence(records, log_start=start, log_end=end)
        answer: dict[str, Any] = {
            "probe": None if probe is None else [probe[0], to_data(probe[1])],
            "found": None if found is None else list(found),
            "verify_from": tracker.verify_from(),
        }
        if found is not None:
            answer["events"] = _events(tracker.log_diverged_at(found[0], now, beyond_ring=found[1]))
        return answer, tracker
    if kind == "snapshot":
        data = tracker.snapshot()
        restored = PartitionTracker.restore(data, topic=TOPIC, partition=PARTITION, config=config)
        return {"before": observable_state(tracker), "after": observable_state(restored)}, restored
    raise ValueError(f"unknown fact {kind!r}")


def run_workload(
    workload: Workload,
    *,
    tracker: PartitionTracker | None = None,
    start: int = 0,
    on_snapshot: Callable[[int, bytes], None] | None = None,
) -> dict[str, Any]:
    """Feed ``workload.facts[start:]`` to ``tracker`` (a new one by default) and return
    every answer, and the observable state at the end, as JSON data.

    ``on_snapshot(index, bytes)`` sees the bytes written at each snapshot fact (the
    recording script keeps some as test data).
    """
    config = TrackerConfig(**workload.config)
    if tracker is None:
        tracker = PartitionTracker(TOPIC, PARTITION, config=config)
    answers: list[Any] = []
    for index in range(start, len(workload.facts)):
        fact = workload.facts[index]
        if on_snapshot is not None and fact[0] == "snapshot":
            on_snapshot(index, tracker.snapshot())
        try:
            answer, tracker = apply_fact(tracker, fact, config)
        except Exception as exc:  # recorded: an error is an answer like any other
            answer = {"error": type(exc).__name__, "message": str(exc)}
        answers.append(answer)
    return {
        "digest": workload.digest(),
        "answers": answers,
        "end": observable_state(tracker),
    }


def restore(data: bytes, workload: Workload) -> PartitionTracker:
    """A tracker restored from snapshot ``data`` with the workload's config."""
    return PartitionTracker.restore(
        data, topic=TOPIC, partition=PARTITION, config=TrackerConfig(**workload.config)
    )


def encode_bytes(data: bytes) -> str:
    """Snapshot bytes as text for the JSON test data."""
    return base64.b64encode(data).decode()


def decode_bytes(text: str) -> bytes:
    """The inverse of :func:`encode_bytes`."""
    return base64.b64decode(text)


def special_workloads() -> list[Workload]:
    """Shapes random workloads rarely give: a snapshot of an empty tracker, and of a full
    default-size ring (negative seeds name them)."""
    empty = Workload(-1, {}, [["snapshot"], ["observe", 0, 5, "p0", 0, 3, 1.0], ["snapshot"]])
    facts: list[Fact] = []
    for offset in range(20_000):
        producer, seq = f"p{offset % 3}", offset // 3
        if offset % 5_000 == 4_999:
            seq += 3  # a jump now and then, so the snapshot holds gaps
        facts.append(["fields", offset, 1_000_000 + offset, producer, 0, seq, 1.0])
    offset = 20_000
    facts += [["caught_up", offset, offset, 500.0], ["tick", 500.0], ["snapshot"]]
    facts += [["observe", offset + k, 2_000_000, "p1", 0, 7_000 + k, 501.0] for k in range(5)]
    facts += [["snapshot"]]
    full = Workload(-2, {"grace_period": 10.0}, facts)
    return [empty, full]
