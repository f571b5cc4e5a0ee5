"""The client's fetch session bookkeeping (rules S1-S5 of ``gapwatch.kafka.fetch_session``).

No broker: a small model of a broker's session cache (KIP-227 as Kafka's ``FetchSession``
describes it) answers the plans, and the property tests check that after every answer the
broker holds exactly what the client wanted, and that every watermark the client calls
confirmed is the broker's watermark at that answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from gapwatch.kafka.fetch_session import (
    FETCH_SESSION_ID_NOT_FOUND,
    INVALID_FETCH_SESSION_EPOCH,
    FetchPlan,
    FetchSession,
    FetchTarget,
)

MAX_BYTES = 1024


@dataclass
class BrokerModel:
    """A broker's fetch session cache for one client, and each partition's high watermark."""

    high_watermarks: dict[int, int] = field(default_factory=dict)
    session_id: int = 0
    next_id: int = 100
    epoch: int = 0
    held: dict[int, FetchTarget] = field(default_factory=dict)
    cached_hw: dict[int, int] = field(default_factory=dict)
    makes_sessions: bool = True

    def answer(self, plan: FetchPlan[int]) -> tuple[int, int, dict[int, int]]:
        """(top-level error, session id, included partitions with their watermark)."""
        if plan.is_full:
            # A full request closes the session it names (if the broker still has it).
            self.held = dict(plan.send)
            self.cached_hw = {}
            if self.makes_sessions:
                self.session_id, self.next_id = self.next_id, self.next_id + 1
                self.epoch = 1
            else:
                self.session_id = 0
            included = {key: self.hw(key) for key in self.held}
            self.cached_hw = dict(included)
            return 0, self.session_id, included
        if plan.session_id != self.session_id or self.session_id == 0:
            return FETCH_SESSION_ID_NOT_FOUND, 0, {}
        if plan.epoch != self.epoch:
            return INVALID_FETCH_SESSION_EPOCH, 0, {}
        self.epoch += 1
        for key, target in plan.send:
            self.held[key] = target
        for key in plan.forget:
            del self.held[key]
            self.cached_hw.pop(key, None)
        included = {
            key: self.hw(key) for key in self.held if self.cached_hw.get(key) != self.hw(key)
        }
        self.cached_hw.update(included)
        return 0, self.session_id, included

    def hw(self, key: int) -> int:
        return self.high_watermarks.setdefault(key, 0)

    def evict(self) -> None:
        self.session_id = 0


def wanted_of(offsets: dict[int, int]) -> dict[int, FetchTarget]:
    return {key: (offset, MAX_BYTES) for key, offset in offsets.items()}


class TestPlans:
    def test_first_request_is_full(self) -> None:
        """S1: without a session every wanted partition is named, epoch 0, none forgotten."""
        session: FetchSession[int] = FetchSession()
        plan = session.plan(wanted_of({1: 5, 2: 7}))
        assert (plan.session_id, plan.epoch, plan.forget) == (0, 0, ())
        assert dict(plan.send) == {1: (5, MAX_BYTES), 2: (7, MAX_BYTES)}
        assert plan.is_full

    def test_incremental_names_only_changes_and_forgets_the_rest(self) -> None:
        """S2: after an answer only new or moved partitions are named, left ones forgotten."""
        session: FetchSession[int] = FetchSession()
        session.commit(session.plan(wanted_of({1: 5, 2: 7, 3: 9})), session_id=42, now_ms=1)
        plan = session.plan(wanted_of({1: 5, 2: 8, 4: 0}))
        assert (plan.session_id, plan.epoch) == (42, 1)
        assert dict(plan.send) == {2: (8, MAX_BYTES), 4: (0, MAX_BYTES)}
        assert plan.forget == (3,)
        assert not plan.is_full

    def test_max_bytes_change_is_sent(self) -> None:
        """S2: a changed maximum size is a change too."""
        session: FetchSession[int] = FetchSession()
        session.commit(session.plan({1: (5, 10)}), session_id=42, now_ms=1)
        assert dict(session.plan({1: (5, 20)}).send) == {1: (5, 20)}

    def test_epochs_count_up_and_wrap_to_one(self) -> None:
        """S2: epochs 1, 2, ... and after 2**31-1 comes 1 (0 would mean a new session)."""
        session: FetchSession[int] = FetchSession()
        session.commit(session.plan({}), session_id=9, now_ms=1)
        session.commit(session.plan({}), session_id=9, now_ms=2)
        assert session.plan({}).epoch == 2
        session.epoch = 2**31 - 1
        session.commit(session.plan({}), session_id=9, now_ms=3)
        assert session.plan({}).epoch == 1

    def test_no_session_made_means_full_again(self) -> None:
        """S1: an answer with session id 0 leaves the client without a session."""
        session: FetchSession[int] = FetchSession()
        session.commit(session.plan(wanted_of({1: 5})), session_id=0, now_ms=1)
        assert session.plan(wanted_of({1: 5})).is_full

    def test_reset_makes_next_request_full_and_counts(self) -> None:
        """S4: after a reset the next request is full and names the old session to close;
        resets of real sessions are counted unless they are not failures."""
        session: FetchSession[int] = FetchSession()
        session.reset()
        assert session.resets == 0
        session.commit(session.plan(wanted_of({1: 5})), session_id=3, now_ms=1)
        session.reset()
        plan = session.plan(wanted_of({1: 5}))
        assert plan.is_full
        assert dict(plan.send) == {1: (5, MAX_BYTES)}
        assert (plan.session_id, session.resets) == (3, 1)
        session.commit(plan, session_id=4, now_ms=2)
        session.reset(failed=False)
        assert (session.plan({}).session_id, session.resets) == (4, 1)

    def test_full_request_after_a_full_answer_closes_nothing(self) -> None:
        """S1: once a full request is answered, the next full one replaces no session."""
        session: FetchSession[int] = FetchSession()
        session.commit(session.plan(wanted_of({1: 5})), session_id=3, now_ms=1)
        session.reset()
        session.commit(session.plan(wanted_of({1: 5})), session_id=0, now_ms=2)
        assert session.plan(wanted_of({1: 5})).session_id == 0

    def test_plan_changes_nothing_until_commit(self) -> None:
        """S3: a planned request that is never answered leaves the session as it was."""
        session: FetchSession[int] = FetchSession()
        session.commit(session.plan(wanted_of({1: 5})), session_id=3, now_ms=1)
        session.plan(wanted_of({2: 5}))
        assert session.holds(1)
        assert not session.holds(2)
        assert session.size == 1


class TestConfirmation:
    def test_included_then_omitted_is_confirmed_at_the_later_answer(self) -> None:
        """S5: a partition once included is confirmed at each later answer that omits it."""
        session: FetchSession[int] = FetchSession()
        session.commit(session.plan(wanted_of({1: 5})), session_id=3, now_ms=10)
        session.note_included(1)
        assert session.confirmed_at(1) == 10
        session.commit(session.plan(wanted_of({1: 5})), session_id=3, now_ms=20)
        assert session.confirmed_at(1) == 20

    def test_never_included_is_not_confirmed(self) -> None:
        """S5: a partition whose watermark the client never applied is not confirmed."""
        session: FetchSession[int] = FetchSession()
        session.commit(session.plan(wanted_of({1: 5})), session_id=3, now_ms=10)
        assert session.confirmed_at(1) is None

    def test_error_forget_and_reset_unconfirm(self) -> None:
        """S5: an error answer, forgetting the partition, or a reset end its confirmation."""
        session: FetchSession[int] = FetchSession()
        session.commit(session.plan(wanted_of({1: 5, 2: 5})), session_id=3, now_ms=10)
        session.note_included(1)
        session.note_included(2)
        session.note_unconfirmed(1)
        assert session.confirmed_at(1) is None
        session.commit(session.plan(wanted_of({})), session_id=3, now_ms=20)
        assert session.confirmed_at(2) is None
        session.note_included(2)
        session.reset()
        assert session.confirmed_at(2) is None


# One step of a property run: the client's wanted offsets change, watermarks move, or
# something fails.
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("want"), st.dictionaries(st.integers(0, 7), st.integers(0, 3))),
        st.tuples(st.just("produce"), st.integers(0, 7)),
        st.tuples(st.just("lost"), st.booleans()),  # the broker did (not) apply it
        st.tuples(st.just("evict"), st.none()),
        st.tuples(st.just("no_sessions"), st.booleans()),
    ),
    max_size=40,
)


class TestAgainstABrokerModel:
    @settings(max_examples=300, deadline=None)
    @given(steps=STEPS)
    def test_broker_holds_what_the_client_wants_and_confirmed_watermarks_are_true(
        self, steps: list[tuple[str, object]]
    ) -> None:
        """Whatever the order of changes, failures and evictions, each successful answer
        leaves the broker holding the wanted set, and every partition the session calls
        confirmed has the broker's current watermark on the client."""
        broker = BrokerModel()
        session: FetchSession[int] = FetchSession()
        client_hw: dict[int, int] = {}
        wanted: dict[int, FetchTarget] = {}
        now = 0
        for kind, arg in steps:
            now += 1
            if kind == "want":
                assert isinstance(arg, dict)
                wanted = wanted_of(arg)
            elif kind == "produce":
                assert isinstance(arg, int)
                broker.high_watermarks[arg] = broker.hw(arg) + 1
            elif kind == "evict":
                broker.evict()
            elif kind == "no_sessions":
                assert isinstance(arg, bool)
                broker.makes_sessions = arg
            plan = session.plan(wanted)
            if kind == "lost":
                if arg:
                    broker.answer(plan)  # applied by the broker, answer lost
                session.reset()
                continue
            error, session_id, included = broker.answer(plan)
            if error:
                session.reset()
                continue
            session.commit(plan, session_id=session_id, now_ms=now)
            for key, hw in included.items():
                client_hw[key] = hw
                session.note_included(key)
            if broker.session_id:
                assert broker.held == wanted
            for key in wanted:
                if session.confirmed_at(key) is not None:
                    assert session.confirmed_at(key) == now
                    assert client_hw[key] == broker.hw(key)
            # Every wanted partition is confirmed after a successful answer in a session.
            if session_id:
                assert all(session.confirmed_at(key) == now for key in wanted)
