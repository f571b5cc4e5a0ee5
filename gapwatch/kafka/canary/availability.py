"""Whether each broker takes canary writes: pure, facts and ``now`` in, a verdict out.

Which brokers are answered for (rule A0): every broker seen in the metadata within the
departure time (one that is down stays listed, at 0) and every partition owner; a broker
gone for longer has had its partition moved and drops out.

A broker is available (rule A1 and A2 both hold) only while:

A1. it leads the canary partition it owns (its preferred-leader partition, see
    :mod:`gapwatch.kafka.canary.placement`), as the latest metadata says; and
A2. a canary write to that partition, acknowledged while that broker led it, completed
    within the last ``window`` seconds.

Anything else is unavailable: a broker that lost leadership (even if writes now succeed
through another broker), one whose writes fail or time out, one missing from the
metadata, one that has not had a write acknowledged yet. So a sick broker cannot hide
behind a healthy follower that took over its partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LastWrite:
    """The latest acknowledged canary write of one partition: when, and through which
    broker (the partition's leader when it was acknowledged)."""

    at: float
    leader: int


def is_available(
    broker: int,
    *,
    own_partition: int | None,
    leaders: Mapping[int, int | None],
    last_writes: Mapping[int, LastWrite],
    now: float,
    window: float,
) -> bool:
    """Rules A1 and A2 for one broker; ``own_partition`` is ``None`` if it owns none."""
    if own_partition is None:
        return False
    if leaders.get(own_partition) != broker:
        return False  # A1
    last = last_writes.get(own_partition)
    return last is not None and last.leader == broker and now - last.at <= window  # A2


def availability(
    brokers: Iterable[int],
    *,
    owners: Mapping[int, int],
    leaders: Mapping[int, int | None],
    last_writes: Mapping[int, LastWrite],
    now: float,
    window: float,
) -> dict[int, bool]:
    """:func:`is_available` for each of ``brokers``; ``owners`` maps partition -> broker."""
    own = {broker: partition for partition, broker in sorted(owners.items(), reverse=True)}
    return {
        broker: is_available(
            broker,
            own_partition=own.get(broker),
            leaders=leaders,
            last_writes=last_writes,
            now=now,
            window=window,
        )
        for broker in sorted(set(brokers))
    }


def listed_brokers(
    last_seen: Mapping[int, float], owners: Mapping[int, int], *, now: float, departure: float
) -> list[int]:
    """Rule A0: the brokers the availability gauge has a series for."""
    recent = {broker for broker, seen in last_seen.items() if now - seen <= departure}
    return sorted(recent | set(owners.values()))
