"""The Fetch request of a session plan, encoded as aiokafka sends it and decoded again.

No broker: each Fetch version with sessions (v7, v9 with leader epochs, v11 with a rack id)
must carry the plan's session id and epoch, name exactly the partitions to send with their
fetch offsets and sizes, and forget exactly the partitions to forget.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.protocol.fetch import FetchRequest_v7, FetchRequest_v9, FetchRequest_v11

from gapwatch.kafka.aiokafka_fetch_sessions import SessionFetchRequest
from gapwatch.kafka.fetch_session import FetchSession

A0, A1, B2 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 2)


def incremental_request() -> SessionFetchRequest:
    session: FetchSession[TopicPartition] = FetchSession()
    session.commit(session.plan({A0: (5, 100), A1: (6, 100)}), session_id=9, now_ms=1)
    plan = session.plan({A0: (7, 100), A1: (6, 100), B2: (0, 200)})
    return SessionFetchRequest(
        plan, session, max_wait_ms=250, min_bytes=1, max_bytes=1000, isolation_level=1
    )


def as_plain(value: Any) -> Any:
    """Decoded structs as nested tuples of plain values."""
    if isinstance(value, list | tuple):
        return tuple(as_plain(item) for item in value)
    return value


@pytest.mark.parametrize("struct", [FetchRequest_v7, FetchRequest_v9, FetchRequest_v11])
def test_incremental_request_round_trips(struct: Any) -> None:
    """Session id and epoch, the changed and the new partitions, the forgotten one."""
    request = incremental_request()
    decoded = struct.decode(request.build(struct).encode())
    assert (decoded.session_id, decoded.session_epoch) == (9, 1)
    assert (decoded.max_wait_time, decoded.min_bytes, decoded.max_bytes) == (250, 1, 1000)
    assert decoded.isolation_level == 1
    with_epoch = struct.API_VERSION >= 9
    named = {
        (topic, entry[0]): (entry[2], entry[4]) if with_epoch else (entry[1], entry[3])
        for topic, entries in as_plain(decoded.topics)
        for entry in entries
    }
    assert named == {("a", 0): (7, 100), ("b", 2): (0, 200)}
    assert as_plain(decoded.forgotten_topics_data) == ()
    if struct.API_VERSION >= 11:
        assert decoded.rack_id == ""


def test_forgotten_partitions_are_sent() -> None:
    """A partition no longer wanted is listed under forgotten_topics_data."""
    session: FetchSession[TopicPartition] = FetchSession()
    session.commit(session.plan({A0: (5, 100), A1: (6, 100)}), session_id=9, now_ms=1)
    request = SessionFetchRequest(
        session.plan({A0: (5, 100)}),
        session,
        max_wait_ms=250,
        min_bytes=1,
        max_bytes=1000,
        isolation_level=0,
    )
    decoded = FetchRequest_v7.decode(request.build(FetchRequest_v7).encode())
    assert as_plain(decoded.topics) == ()
    assert as_plain(decoded.forgotten_topics_data) == (("a", (1,)),)


def test_full_request_names_everything_and_the_session_it_replaces() -> None:
    """After a reset: epoch 0, every wanted partition, the old session id to close."""
    session: FetchSession[TopicPartition] = FetchSession()
    session.commit(session.plan({A0: (5, 100)}), session_id=9, now_ms=1)
    session.reset()
    request = SessionFetchRequest(
        session.plan({A0: (5, 100), B2: (1, 100)}),
        session,
        max_wait_ms=250,
        min_bytes=1,
        max_bytes=1000,
        isolation_level=0,
    )
    decoded = FetchRequest_v7.decode(request.build(FetchRequest_v7).encode())
    assert (decoded.session_id, decoded.session_epoch) == (9, 0)
    assert as_plain(decoded.topics) == (("a", ((0, 5, -1, 100),)), ("b", ((2, 1, -1, 100),)))
