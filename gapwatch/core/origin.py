"""Where a gap on a mirrored topic came from: the mirror, the source, or nobody can say.

A mirror (MirrorMaker 2) copies every header, the partition number and the record
timestamp, so a gap confirmed on the target names exactly which stamps are missing. What
the source partition holds for those stamps decides the origin. The adapter that reads the
source (:mod:`gapwatch.kafka.source_log`) reports what it saw as a :class:`SourceScan`;
:func:`decide_origin` turns that into an :class:`Attribution`. Pure: no I/O, no clock.

Rules, in order (each a branch of :func:`decide_origin`, named in its reason):

O1. Every missing sequence is in the source log: ``mirror`` (the mirror lost them).
O2. The scan stopped at its record limit before it could see the whole range:
    ``unknown`` (reason ``scan-limit``): what lies beyond was not read.
O3. Some missing sequences are in the source log and the others are not, and the range
    is held (O4's test): ``mixed`` (the reason says how many of each).
O4. None is in the source log and the range is held: the stream's record just before the
    gap was read on the source (or the gap starts at sequence 0 and the source log was
    never cut by retention): ``source`` (lost upstream, before the mirror).
O5. None (or only some) is there and the range is not held because the source log now
    starts past where the range would be: ``unknown`` (reason ``retention``): retention
    deleted it, so nobody can say whether it was ever written.
O6. Anything else (the record before the gap is not where its timestamp says):
    ``unknown`` (reason ``not-located``).

Why the record before the gap proves the range is held: the source log is deleted from its
start only, so if that record is still there, every later record is too; a missing
sequence absent from the scanned range (which runs past the record after the gap) was
never written to the source partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Origin(StrEnum):
    """Where the records of a gap on a mirrored topic were lost."""

    PENDING = "pending"  # confirmed; the source lookup has not answered yet
    MIRROR = "mirror"  # in the source log, never reached the target
    SOURCE = "source"  # not in the source log either: lost upstream
    MIXED = "mixed"  # some in the source log, some not
    UNKNOWN = "unknown"  # nobody can say; the reason says why


class Reason(StrEnum):
    """The rule (or the failure) an attribution rests on."""

    LOOKUP_RUNNING = "lookup-running"
    IN_SOURCE = "in-source"
    NOT_IN_SOURCE = "not-in-source"
    PARTLY_IN_SOURCE = "partly-in-source"
    SCAN_LIMIT = "scan-limit"
    RETENTION = "retention"
    NOT_LOCATED = "not-located"
    NO_SOURCE_PARTITION = "no-source-partition"
    SOURCE_UNREACHABLE = "source-unreachable"


@dataclass(frozen=True, slots=True)
class SourceScan:
    """What a bounded read of the source partition found for one gap.

    ``found`` are the gap's missing sequences seen on the source (each once, whatever
    the copies); ``saw_before`` whether the stream's record with sequence ``first_seq - 1``
    was read; ``log_start`` the source partition's first offset when it was read;
    ``scan_start`` the offset the scan began at; ``hit_limit`` whether it stopped at its
    record limit rather than past the range.
    """

    found: frozenset[int]
    saw_before: bool
    log_start: int
    scan_start: int
    hit_limit: bool


@dataclass(frozen=True, slots=True)
class Attribution:
    """The origin of one gap's missing records and why, in words an operator can act on.

    ``in_source`` is how many of the gap's missing sequences the source holds (the
    records the mirror lost); ``not_in_source`` how many it lacks while holding the range
    (lost upstream). Both are 0 when nothing could be decided.
    """

    origin: Origin
    reason: Reason
    detail: str
    in_source: int = 0
    not_in_source: int = 0

    @property
    def text(self) -> str:
        """``reason: detail``, as ``/gaps`` shows it in ``origin_reason``."""
        return f"{self.reason.value}: {self.detail}"


PENDING: Final = Attribution(Origin.PENDING, Reason.LOOKUP_RUNNING, "the source is being read")


def unreachable(problem: str) -> Attribution:
    """``unknown``: the source could not be read after every retry."""
    return Attribution(Origin.UNKNOWN, Reason.SOURCE_UNREACHABLE, problem)


def no_source_partition(topic: str, partition: int) -> Attribution:
    """``unknown``: the source cluster has no such partition (deleted, or another name),
    or hides it: Kafka leaves a topic the principal may not describe out of its metadata,
    so a missing Read ACL looks exactly like a missing topic."""
    return Attribution(
        Origin.UNKNOWN,
        Reason.NO_SOURCE_PARTITION,
        f"the source cluster has no partition {topic}/{partition}, or the monitor's "
        "principal there may not read it (gapwatch acls --role mirror-source)",
    )


def _is_held(scan: SourceScan, first_seq: int) -> bool:
    """O4's test: the range cannot have been deleted from the source."""
    return scan.saw_before or (first_seq == 0 and scan.log_start == 0)


def decide_origin(*, first_seq: int, last_seq: int, scan: SourceScan) -> Attribution:
    """The origin of the missing sequences ``first_seq..last_seq`` given ``scan`` (O1-O6)."""
    wanted = last_seq - first_seq + 1
    found = sum(1 for seq in scan.found if first_seq <= seq <= last_seq)
    seqs = f"sequences {first_seq}..{last_seq}"
    if found == wanted:
        return Attribution(
            Origin.MIRROR,
            Reason.IN_SOURCE,
            f"all {wanted} missing {seqs} are in the source log",
            in_source=wanted,
        )
    if scan.hit_limit:
        return Attribution(
            Origin.UNKNOWN,
            Reason.SCAN_LIMIT,
            f"the scan from source offset {scan.scan_start} stopped at its record limit "
            f"with {found} of {wanted} {seqs} found",
        )
    held = _is_held(scan, first_seq)
    if held and found:
        return Attribution(
            Origin.MIXED,
            Reason.PARTLY_IN_SOURCE,
            f"{found} of the {wanted} missing {seqs} are in the source log, "
            f"{wanted - found} are not",
            in_source=found,
            not_in_source=wanted - found,
        )
    if held:
        return Attribution(
            Origin.SOURCE,
            Reason.NOT_IN_SOURCE,
            f"none of the {wanted} missing {seqs} is in the source log, which holds the "
            "records around them: lost before the mirror",
            not_in_source=wanted,
        )
    if scan.log_start > 0 and scan.scan_start <= scan.log_start:
        return Attribution(
            Origin.UNKNOWN,
            Reason.RETENTION,
            f"the source log now starts at offset {scan.log_start}, past {seqs}: "
            "deleted by retention, so nobody can tell whether they were written",
        )
    return Attribution(
        Origin.UNKNOWN,
        Reason.NOT_LOCATED,
        f"the record before {seqs} was not found on the source from offset "
        f"{scan.scan_start} (timestamps out of order?)",
    )
