"""Stateful test: records, drops, duplicates, restarts, log truncation and checkpoints.

A Hypothesis state machine drives one partition. At any step the monitor may checkpoint
and restart from the snapshot, and the broker may truncate the log below what the monitor
already read (an unclean leader election right after it caught up). Invariants hold after
every step; at teardown, after everything settled, the tracker must have confirmed exactly
the dropped records, marked exactly the read-then-truncated ones ``truncated``, and
counted exactly the duplicate copies it read.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gapwatch.core.config import TrackerConfig
from gapwatch.core.model import GapState
from gapwatch.core.tracker import PartitionTracker
from gapwatch.core.wire import Stamp

TOPIC, PARTITION, GRACE = "ledger", 0, 5.0
PRODUCERS = ("a", "b", "c")
Seq = tuple[str, int, int]  # producer, epoch, seq


class TrackerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.config = TrackerConfig(grace_period=GRACE, ring_size=1024)
        self.tracker = PartitionTracker(TOPIC, PARTITION, config=self.config)
        self.now = 100.0
        self.clock_ms = 0
        self.log: list[tuple[Seq, int, bool]] = []  # (stamp, timestamp, is a copy)
        self.read = 0
        self.epoch = dict.fromkeys(PRODUCERS, 1)
        self.next_seq = dict.fromkeys(PRODUCERS, 0)
        self.open_tail = dict.fromkeys(PRODUCERS, False)
        self.dropped: set[Seq] = set()
        self.truncated: set[Seq] = set()
        self.copies_read = 0
        self.observed = 0  # records fed to the tracker, truncated or not

    # --- the world -------------------------------------------------------------------

    @rule(producer=st.sampled_from(PRODUCERS), fate=st.sampled_from(["ok", "ok", "drop", "dup"]))
    def send(self, producer: str, fate: str) -> None:
        seq = self.next_seq[producer]
        if seq == 0:
            fate = "ok"  # a stream's first record is its baseline
        self.next_seq[producer] += 1
        self.clock_ms += 1
        key = (producer, self.epoch[producer], seq)
        self.open_tail[producer] = fate == "drop"
        if fate == "drop":
            self.dropped.add(key)
            return
        self.log.append((key, self.clock_ms, False))
        if fate == "dup":
            self.log.append((key, self.clock_ms, True))

    @rule(producer=st.sampled_from(PRODUCERS))
    def restart(self, producer: str) -> None:
        self.close(producer)
        self.epoch[producer] += 1
        self.next_seq[producer] = 0

    def close(self, producer: str) -> None:
        """A dropped tail is only visible if a later record arrives: send one."""
        if self.open_tail[producer]:
            self.send(producer, "ok")

    @rule(seconds=st.integers(0, 8))
    def advance(self, seconds: int) -> None:
        self.now += seconds

    # --- the monitor -----------------------------------------------------------------

    @rule(budget=st.integers(0, 12))
    def poll(self, budget: int) -> None:
        hwm = len(self.log)
        end = min(hwm, self.read + budget)
        for offset in range(self.read, end):
            (producer, epoch, seq), ts, is_copy = self.log[offset]
            self.tracker.observe(offset, ts, Stamp(producer, epoch, seq), self.now)
            self.copies_read += is_copy
            self.observed += 1
        self.read = end
        self.tracker.note_read_position(read_offset=end, high_watermark=hwm, observed_at=self.now)
        self.tracker.tick(self.now)

    @precondition(lambda self: self.read > 0 and self.read == len(self.log))
    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        """The new leader lacks the last few records the monitor already read."""
        k = data.draw(st.integers(max(0, self.read - 6), self.read - 1), label="new end")
        survivors = {key for key, _, _ in self.log[:k]}
        self.truncated |= {key for key, _, _ in self.log[k:]} - survivors
        del self.log[k:]
        self.read = k
        (event,) = self.tracker.log_truncated(k, self.now)
        assert event.new_end_offset == k  # type: ignore[union-attr]

    @rule()
    def checkpoint_and_restart(self) -> None:
        data = self.tracker.snapshot()
        self.tracker = PartitionTracker.restore(
            data, topic=TOPIC, partition=PARTITION, config=self.config
        )

    # --- checks ----------------------------------------------------------------------

    @invariant()
    def counters_agree_with_the_gaps(self) -> None:
        t = self.tracker
        assert t.counters.open_gaps == len(t.open_gaps())
        confirmed = [g for g in t.gaps() if g.state in (GapState.CONFIRMED, GapState.RECOVERED)]
        assert t.counters.missing == sum(g.count for g in confirmed)
        assert t.counters.records == self.observed

    @invariant()
    def snapshot_round_trips(self) -> None:
        t = self.tracker
        copy = PartitionTracker.restore(
            t.snapshot(), topic=TOPIC, partition=PARTITION, config=self.config
        )
        assert copy.gaps() == t.gaps()
        assert copy.counters.as_dict() == t.counters.as_dict()
        assert copy.streams() == t.streams()

    def teardown(self) -> None:
        for producer in PRODUCERS:
            self.close(producer)
        for _ in range(2):
            self.now += GRACE + 1
            self.poll(10**9)
        t = self.tracker
        lost: set[Seq] = set()
        gone: set[Seq] = set()
        for gap in t.gaps():
            seqs = {(gap.producer, gap.epoch, s) for s in range(gap.first_seq, gap.last_seq + 1)}
            if gap.state is GapState.CONFIRMED:
                lost |= seqs
            elif gap.state is GapState.TRUNCATED:
                gone |= seqs
            else:
                assert gap.state is GapState.HEALED, gap
        assert lost == self.dropped
        assert gone == self.truncated
        c = t.counters
        assert c.truncated == len(self.truncated)
        assert c.duplicates == self.copies_read
        assert (c.recovered, c.zombies, c.open_gaps, c.truncated_unaccounted) == (0, 0, 0, 0)


TrackerMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_tracker_state_machine = TrackerMachine.TestCase
