"""Builders of core values shared by the monitor's unit tests."""

from __future__ import annotations

from gapwatch.core.model import Gap, GapCause, GapState, StreamKey, gap_id


def make_gap(
    first_seq: int,
    *,
    opened_at: float,
    topic: str = "t",
    partition: int = 0,
    producer: str = "p",
    state: GapState = GapState.OPEN,
    last_seq: int | None = None,
) -> Gap:
    key = StreamKey(topic, partition, producer, 1)
    last = first_seq if last_seq is None else last_seq
    return Gap(
        id=gap_id(key, first_seq, cause=GapCause.SEQUENCE),
        topic=topic,
        partition=partition,
        producer=producer,
        epoch=1,
        first_seq=first_seq,
        last_seq=last,
        count=last - first_seq + 1,
        state=state,
        cause=GapCause.SEQUENCE,
        opened_at=opened_at,
        updated_at=opened_at,
    )
