"""Snapshot format of one partition's tracker: ``b"GWT"``, a version byte, zlib'd JSON.

Everything that affects a future decision is kept: every stream (current, retired epochs,
and streams only the ring still names) with its baseline, high sequence and record,
missing ranges, reset generation, pending producer reports and failed ranges; active
gaps and the closed history; the confirmation facts (caught-up time, pending
watermarks); reports waiting for their stream; the counters; and the ring entries (offsets
delta-encoded, which zlib turns into almost nothing). Restoring into a config with a
smaller ``ring_size`` keeps the newest entries. Not kept: the time of the next idle
sweep (the first ``tick`` after a restore sweeps).

:func:`decode` validates every field and raises :class:`~gapwatch.errors.SnapshotError`,
and nothing else, for anything it cannot trust. Format changes bump :data:`VERSION`;
a reader accepts only versions it knows.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import fields
from typing import TYPE_CHECKING, Any, Final

from gapwatch.core.counters import COUNTER_NAMES
from gapwatch.core.model import Gap, GapCause, GapState, ProducerReport
from gapwatch.core.stream import PendingReport, Range, Stream, StreamAux
from gapwatch.core.wire import MAX_U64
from gapwatch.errors import SnapshotError

if TYPE_CHECKING:
    from gapwatch.core.tracker import PartitionTracker

MAGIC: Final = b"GWT"
VERSION: Final = 1
# A checkpoint is stored in Kafka; refuse to inflate anything absurd (zip bombs).
MAX_INFLATED_BYTES: Final = 256 * 1024 * 1024

_GAP_FIELDS: Final = tuple(f.name for f in fields(Gap))
_ROLE_CURRENT, _ROLE_RETIRED, _ROLE_OTHER = 0, 1, 2
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def _float_out(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _gap_row(gap: Gap) -> list[Any]:
    return [getattr(gap, name) for name in _GAP_FIELDS]


def encode(t: PartitionTracker) -> bytes:
    """Serialise ``t``; see the module docstring."""
    index: dict[int, int] = {}
    rows: list[list[Any]] = []

    def add(st: Stream, role: int) -> int:
        k = index.get(id(st))
        if k is None:
            k = index[id(st)] = len(rows)
            aux = st.aux
            aux_row = None
            if aux is not None:
                aux_row = [
                    aux.generation,
                    [[r.first, r.last, r.gap_id] for r in aux.ranges],
                    [[p.reported_at, p.acked, p.assigned, p.final] for p in aux.reports],
                    [list(x) for x in aux.told],
                ]
            rows.append(
                [
                    st.producer,
                    st.epoch,
                    st.base,
                    st.high,
                    st.high_offset,
                    st.high_ts,
                    st.last_seen,
                    role,
                    aux_row,
                ]
            )
        return k

    for st in t._streams.values():
        add(st, _ROLE_CURRENT)
    for st in t._retired.values():
        add(st, _ROLE_RETIRED)
    book = t._book
    gaps = []
    for gap in book.active.values():
        owner = book.owner.get(gap.id)
        gaps.append([_gap_row(gap), -1 if owner is None else add(owner, _ROLE_OTHER)])
    mask = t._mask
    ring_offsets, ring_streams, ring_seqs = [], [], []
    prev = 0
    for k in range(t.ring_start(), t._n):
        off = t._ring_offsets[k & mask]
        ring_offsets.append(off - prev)
        prev = off
        owner = t._ring_streams[k & mask]
        ring_streams.append(-1 if owner is None else add(owner, _ROLE_OTHER))
        ring_seqs.append(t._ring_seqs[k & mask])
    body = {
        "topic": t.topic,
        "partition": t.partition,
        "records": t._n + t._records_base,
        "counters": t._counters.as_dict(),
        "caught_up_at": _float_out(t._caught_up_at),
        "hwm_pending": [list(x) for x in t._hwm_pending],
        "streams": rows,
        "gaps": gaps,
        "closed": [_gap_row(g) for g in book.closed()],
        "orphans": [
            [
                at,
                r.producer,
                r.epoch,
                r.highest_assigned,
                r.highest_acked,
                [list(x) for x in r.failed],
                r.final,
            ]
            for at, r in t._orphans.values()
        ],
        "ring": [ring_offsets, ring_streams, ring_seqs],
    }
    raw = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    return MAGIC + bytes([VERSION]) + zlib.compress(raw, 6)


# --- decoding ------------------------------------------------------------------------


class _BadFieldError(Exception):
    """Internal: a field failed validation (converted to SnapshotError at the boundary)."""


def _int(v: object, lo: int = 0, hi: int = MAX_U64) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise _BadFieldError(f"bad integer {v!r:.40}")
    return v


def _opt_int(v: object, lo: int = 0, hi: int = MAX_U64) -> int | None:
    return None if v is None else _int(v, lo, hi)


def _float(v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise _BadFieldError(f"bad time {v!r:.40}")
    return float(v)


def _opt_float(v: object) -> float | None:
    return None if v is None else _float(v)


def _str(v: object) -> str:
    if not isinstance(v, str):
        raise _BadFieldError("bad text")
    return v


def _list(v: object, length: int | None = None) -> list[Any]:
    if not isinstance(v, list) or (length is not None and len(v) != length):
        raise _BadFieldError("bad list")
    return v


def _bool(v: object) -> bool:
    if not isinstance(v, bool):
        raise _BadFieldError("bad flag")
    return v


def _gap(row: object) -> Gap:
    r = _list(row, len(_GAP_FIELDS))
    v = dict(zip(_GAP_FIELDS, r, strict=True))
    try:
        state, cause = GapState(v["state"]), GapCause(v["cause"])
    except ValueError:
        raise _BadFieldError("bad gap state") from None
    first, last = _int(v["first_seq"]), _int(v["last_seq"])
    if first > last:
        raise _BadFieldError("bad gap range")
    return Gap(
        id=_str(v["id"]),
        topic=_str(v["topic"]),
        partition=_int(v["partition"], 0, _I64_MAX),
        producer=_str(v["producer"]),
        epoch=_int(v["epoch"]),
        first_seq=first,
        last_seq=last,
        count=_int(v["count"]),
        state=state,
        cause=cause,
        opened_at=_float(v["opened_at"]),
        updated_at=_float(v["updated_at"]),
        confirmed_at=_opt_float(v["confirmed_at"]),
        healed_at=_opt_float(v["healed_at"]),
        offset_before=_opt_int(v["offset_before"], _I64_MIN, _I64_MAX),
        offset_after=_opt_int(v["offset_after"], _I64_MIN, _I64_MAX),
        timestamp_before_ms=_opt_int(v["timestamp_before_ms"], _I64_MIN, _I64_MAX),
        timestamp_after_ms=_opt_int(v["timestamp_after_ms"], _I64_MIN, _I64_MAX),
        producer_told=_bool(v["producer_told"]),
        recovered=_int(v["recovered"]),
        generation=_int(v["generation"]),
    )


def _stream(row: object) -> tuple[Stream, int]:
    r = _list(row, 9)
    st = Stream(
        _str(r[0]),
        _int(r[1]),
        _int(r[2]),
        _int(r[4], _I64_MIN, _I64_MAX),
        _int(r[5], _I64_MIN, _I64_MAX),
        _float(r[6]),
    )
    st.high = _int(r[3])
    role = _int(r[7], 0, 2)
    if r[8] is not None:
        a = _list(r[8], 4)
        aux = st.aux = StreamAux(_int(a[0]))
        prev_last = -1
        for rr in _list(a[1]):
            raw_first, raw_last, gid = _list(rr, 3)
            first, last = _int(raw_first), _int(raw_last)
            if not prev_last < first <= last <= st.high:
                raise _BadFieldError("bad range")
            prev_last = last
            aux.ranges.append(Range(first, last, _str(gid)))
        for p in _list(a[2]):
            at, acked, assigned, final = _list(p, 4)
            aux.reports.append(
                PendingReport(_float(at), _int(acked, -1), _int(assigned, -1), final=_bool(final))
            )
        for x in _list(a[3]):
            told_first, told_last = _list(x, 2)
            aux.told.append((_int(told_first), _int(told_last)))
    return st, role


def decode(t: PartitionTracker, data: bytes) -> None:
    """Load ``data`` into the fresh tracker ``t``; raise ``SnapshotError`` if untrustworthy."""
    try:
        _decode(t, data)
    except SnapshotError:
        raise
    except _BadFieldError as exc:
        raise SnapshotError(f"damaged snapshot: {exc}") from None
    except (
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        OverflowError,
        RecursionError,
        MemoryError,
        zlib.error,
    ):
        raise SnapshotError("damaged snapshot") from None


def _decode(t: PartitionTracker, data: bytes) -> None:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SnapshotError("snapshot is not bytes")
    data = bytes(data)
    if len(data) < 4 or data[:3] != MAGIC:
        raise SnapshotError("not a gapwatch tracker snapshot")
    if data[3] != VERSION:
        raise SnapshotError(f"unknown snapshot version {data[3]} (this reader knows {VERSION})")
    inflater = zlib.decompressobj()
    raw = inflater.decompress(data[4:], MAX_INFLATED_BYTES)
    if inflater.unconsumed_tail or not inflater.eof:
        raise SnapshotError("snapshot is truncated or too large")
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise _BadFieldError("body")
    if body["topic"] != t.topic or body["partition"] != t.partition:
        raise SnapshotError(
            f"snapshot is of {body['topic']!r:.100}/{body['partition']!r:.20}, "
            f"not {t.topic}/{t.partition}"
        )
    counters = body["counters"]
    if not isinstance(counters, dict):
        raise _BadFieldError("counters")
    for name in COUNTER_NAMES:
        setattr(t._counters, name, _int(counters.get(name, 0), -MAX_U64))
    records = _int(body["records"])
    t._caught_up_at = (
        float("-inf") if body["caught_up_at"] is None else _float(body["caught_up_at"])
    )
    t._hwm_pending = [
        (_int(h, _I64_MIN, _I64_MAX), _float(a)) for h, a in map(_list, _list(body["hwm_pending"]))
    ]
    streams: list[Stream] = []
    for row in _list(body["streams"]):
        st, role = _stream(row)
        streams.append(st)
        if role == _ROLE_CURRENT:
            if st.producer in t._streams:
                raise _BadFieldError("duplicate stream")
            t._streams[st.producer] = st
        elif role == _ROLE_RETIRED:
            t._retired[(st.producer, st.epoch)] = st
        if st.aux is not None and st.aux.reports:
            t._reporting[st] = None

    def stream_at(k: object) -> Stream | None:
        k = _int(k, -1, len(streams) - 1)
        return None if k == -1 else streams[k]

    book = t._book
    for entry in _list(body["gaps"]):
        row, owner = _list(entry, 2)
        book.restore(_gap(row), stream_at(owner))
    for st in streams:
        for r in st.ranges:
            if r.gap_id not in book.active:
                raise _BadFieldError("range of an unknown gap")
    for row in _list(body["closed"]):
        book.restore_closed(_gap(row))
    for o in _list(body["orphans"]):
        at, producer, epoch, assigned, acked, failed, final = _list(o, 7)
        report = ProducerReport(
            producer=_str(producer),
            epoch=_int(epoch),
            topic=t.topic,
            partition=t.partition,
            highest_assigned=_opt_int(assigned),
            highest_acked=_opt_int(acked),
            failed=tuple((_int(a), _int(b)) for a, b in map(_list, _list(failed))),
            final=_bool(final),
        )
        t._orphans[(report.producer, report.epoch)] = (_float(at), report)
    offsets, owners, seqs = _list(body["ring"], 3)
    _list(offsets), _list(owners), _list(seqs)
    if not len(offsets) == len(owners) == len(seqs):
        raise _BadFieldError("ring")
    entries: list[tuple[int, Stream | None, int]] = []
    off = 0
    for d, o, s in zip(offsets, owners, seqs, strict=True):
        off += _int(d, 0 if entries else _I64_MIN, _I64_MAX)
        entries.append((_int(off, _I64_MIN, _I64_MAX), stream_at(o), _int(s)))
    entries = entries[-(t._mask + 1) :]
    for k, (off, ring_owner, seq) in enumerate(entries):
        t._ring_offsets[k] = off
        t._ring_streams[k] = ring_owner
        t._ring_seqs[k] = seq
    t._n = len(entries)
    t._records_base = records - t._n
