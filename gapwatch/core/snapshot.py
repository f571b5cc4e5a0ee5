"""Snapshot format of one partition's tracker: ``b"GWT"``, a version byte, then zlib of
(a 4-byte big-endian length, that much JSON, and the ring as packed little-endian arrays).

Everything that affects a future decision is kept: every stream (current, retired epochs,
and streams only the ring still names) with its high sequence and record, the baselines
of streams first seen mid-way (body key ``young``), missing ranges, reset generation,
pending producer reports and failed ranges; active gaps and the closed history; the
confirmation facts (caught-up time, pending watermarks); reports waiting for their stream
(and failed ranges of ones that matured without it); the counters; the R16 skip marks
(``rebase``) and the ids of gaps open at a skip (``doubtful``, both since version 3; the
body keys keep their first names so that written checkpoints still read); and the ring
entries as four packed arrays (offsets and timestamps int64, sequences uint64, stream
indexes int32), packed by :meth:`~gapwatch.core.ring.Ring.pack`: packing and unpacking run
in C, so a full ring costs a few milliseconds, not a Python loop per entry. Since version
4 each array is byte-shuffled before compression (all first bytes of its values, then all
second bytes, ...): offsets and timestamps climb steadily, so their upper bytes become
long runs, and a full ring deflates to ~4 KB instead of ~60 KB, in less than half the
time. Since version 5 only the ring's newest, unsealed entries are packed that way; its
sealed blocks (:class:`~gapwatch.core.ring.SealedBlock`) follow as the ring keeps them
(byte planes; each block's stream table given as stream indexes in body key ``ring``,
blocks of the same streams sharing one), so a snapshot neither unpacks nor repacks them
and a restore into a ring of the same size takes them back as they are: a full ring
snapshots in under a millisecond and restores in one to two (``docs/benchmarks.md``).
The whole payload is still one deflate call (one per block cost more than everything
else). Restoring into a config with another ``ring_size`` unpacks the entries and keeps
the newest. Not kept: the time of the next idle sweep (the first ``tick`` after a restore
sweeps).

:func:`decode` validates every field and raises :class:`~gapwatch.errors.SnapshotError`,
and nothing else, for anything it cannot trust. Format changes bump :data:`VERSION`;
a reader accepts only versions it knows (:data:`READABLE_VERSIONS`).
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import dataclass, fields
from itertools import chain
from typing import Any, Final

from gapwatch.core.counters import COUNTER_NAMES, TrackerCounters
from gapwatch.core.gapbook import GapBook
from gapwatch.core.model import Gap, GapCause, GapState, ProducerReport
from gapwatch.core.progress import ReadProgress
from gapwatch.core.report_ledger import ReportLedger
from gapwatch.core.ring import BLOCK_SIZE, Ring, SealedBlock, unpack_column, unshuffle_bytes
from gapwatch.core.stream import PendingReport, Range, Stream, StreamAux
from gapwatch.core.streamtable import StreamTable
from gapwatch.core.wire import MAX_U64
from gapwatch.errors import SnapshotError

MAGIC: Final = b"GWT"
VERSION: Final = 5
# Versions this reader accepts: 2 is 3 without the R16 state (skip marks, doubtful gaps);
# 3 is 4 with the ring arrays not shuffled; 4 is 5 with the whole ring as packed arrays.
READABLE_VERSIONS: Final = frozenset((2, 3, 4, 5))
SHUFFLED_SINCE: Final = 4
SEALED_SINCE: Final = 5
# A checkpoint is stored in Kafka; refuse to inflate anything absurd (zip bombs).
MAX_INFLATED_BYTES: Final = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TrackerState:
    """The state objects of one tracker: what a snapshot writes and fills."""

    topic: str
    partition: int
    counters: TrackerCounters
    streams: StreamTable
    book: GapBook
    ledger: ReportLedger
    progress: ReadProgress
    ring: Ring


_GAP_FIELDS: Final = tuple(f.name for f in fields(Gap))
_ROLE_CURRENT, _ROLE_RETIRED, _ROLE_OTHER = 0, 1, 2
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def _float_out(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _gap_row(gap: Gap) -> list[Any]:
    return [getattr(gap, name) for name in _GAP_FIELDS]


def encode(t: TrackerState) -> bytes:
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
                [st.producer, st.epoch, st.high, st.high_offset, st.last_seen, role, aux_row]
            )
        return k

    table, book, ring = t.streams, t.book, t.ring
    for st in table.current.values():
        add(st, _ROLE_CURRENT)
    for st in table.retired.values():
        add(st, _ROLE_RETIRED)
    gaps = []
    for gap in book.active.values():
        owner = book.owner.get(gap.id)
        gaps.append([_gap_row(gap), -1 if owner is None else add(owner, _ROLE_OTHER)])
    phase, blocks, hot = ring.sealed_view()
    # map() over a dict's get runs in C; a stream only the ring names is added after.
    by_stream: dict[Stream | None, int] = {None: -1}
    for known in [*table, *book.owner.values()]:
        if known is not None:
            by_stream[known] = add(known, _ROLE_OTHER)

    def row_of(owner: Stream | None) -> int:
        k = by_stream.get(owner)
        if k is None:
            assert owner is not None  # None is in by_stream
            k = by_stream[owner] = add(owner, _ROLE_OTHER)
        return k

    hot_streams = hot[3]
    if phase and not blocks:
        # Entries before the oldest valid one are stale: name no stream for them, or a
        # stream the tracker has forgotten would come back with a restore.
        stale: list[Stream | None] = [None] * phase
        hot_streams = stale + hot_streams[phase:]
    owners: list[int | None] = list(map(by_stream.get, hot_streams))
    if None in owners:
        owners = [row_of(owner) for owner in hot_streams]
    packed = Ring.pack(hot, [-1 if k is None else k for k in owners])
    # Sealed blocks go out as they are kept, after the newest entries.
    sealed_bytes = [block.to_bytes() for block in blocks]
    sealed: list[list[int]] = []
    tables: dict[tuple[int, ...], int] = {}
    for k, (block, data) in enumerate(zip(blocks, sealed_bytes, strict=True)):
        if k == 0 and phase:
            # As above, for the stale entries of the oldest block, whose stream table
            # names them too.
            named = set(block.stream_indexes()[phase:])
            ids: list[Any] = [
                row_of(owner) if j in named else -1 for j, owner in enumerate(block.streams)
            ]
        else:
            found: list[int | None] = list(map(by_stream.get, block.streams))
            ids = list(map(row_of, block.streams)) if None in found else found
        # Blocks of the same streams share one table (usually all of them do).
        sealed.append([tables.setdefault(tuple(ids), len(tables)), len(data)])
    body = {
        "topic": t.topic,
        "partition": t.partition,
        "records": ring.records(),
        "counters": t.counters.as_dict(),
        "caught_up_at": _float_out(t.progress.caught_up_at),
        "hwm_pending": [list(x) for x in t.progress.pending],
        "streams": rows,
        "gaps": gaps,
        "closed": [_gap_row(g) for g in book.closed()],
        "orphans": [_orphan_row(at, r) for at, r in t.ledger.orphans()],
        "told_orphans": [_orphan_row(at, r) for at, r in t.ledger.told_orphans()],
        "young": [
            [add(st, _ROLE_OTHER), st.baseline[0], st.baseline[1]]
            for st in table.with_baseline()
            if st.baseline is not None
        ],
        "rebase": [
            [add(st, _ROLE_OTHER), st.skip_mark] for st in table if st.skip_mark is not None
        ],
        "doubtful": book.open_at_skip(),
        "ring": {
            "size": ring.size,
            "block": ring.block_size(),
            "phase": phase,
            "tables": [list(ids) for ids in tables],
            "blocks": sealed,
            "hot": len(hot_streams),
        },
    }
    raw = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    # Level 1: the packed ring is large and regular; higher levels cost more than they save.
    payload = struct.pack(">I", len(raw)) + raw + packed
    return MAGIC + bytes([VERSION]) + zlib.compress(payload + b"".join(sealed_bytes), 1)


def _orphan_row(at: float, r: ProducerReport) -> list[Any]:
    failed = [list(x) for x in r.failed]
    return [at, r.producer, r.epoch, r.highest_assigned, r.highest_acked, failed, r.final]


# --- decoding ------------------------------------------------------------------------


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
    r = _list(row, 7)
    st = Stream(_str(r[0]), _int(r[1]), _int(r[2]), _int(r[3], _I64_MIN, _I64_MAX), _float(r[4]))
    role = _int(r[5], 0, 2)
    if r[6] is not None:
        a = _list(r[6], 4)
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


def decode(t: TrackerState, data: bytes) -> None:
    """Load ``data`` into fresh state objects ``t``; raise ``SnapshotError`` if untrusted."""
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


def _decode(t: TrackerState, data: bytes) -> None:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SnapshotError("snapshot is not bytes")
    data = bytes(data)
    if len(data) < 4 or data[:3] != MAGIC:
        raise SnapshotError("not a gapwatch tracker snapshot")
    if data[3] not in READABLE_VERSIONS:
        known = ", ".join(map(str, sorted(READABLE_VERSIONS)))
        raise SnapshotError(f"unknown snapshot version {data[3]} (this reader knows {known})")
    version = data[3]
    inflater = zlib.decompressobj()
    payload = inflater.decompress(data[4:], MAX_INFLATED_BYTES)
    if inflater.unconsumed_tail or not inflater.eof:
        raise SnapshotError("snapshot is truncated or too large")
    if len(payload) < 4:
        raise SnapshotError("snapshot is truncated")
    (json_len,) = struct.unpack(">I", payload[:4])
    body = json.loads(payload[4 : 4 + json_len])
    ring = payload[4 + json_len :]
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
        setattr(t.counters, name, _int(counters.get(name, 0), -MAX_U64))
    records = _int(body["records"])
    progress = t.progress
    progress.caught_up_at = (
        float("-inf") if body["caught_up_at"] is None else _float(body["caught_up_at"])
    )
    progress.pending = [
        (_int(h, _I64_MIN, _I64_MAX), _float(a)) for h, a in map(_list, _list(body["hwm_pending"]))
    ]
    table = t.streams
    streams: list[Stream] = []
    for row in _list(body["streams"]):
        st, role = _stream(row)
        streams.append(st)
        if role == _ROLE_CURRENT:
            if st.producer in table.current:
                raise _BadFieldError("duplicate stream")
            table.start(st)
        elif role == _ROLE_RETIRED:
            table.retire(st)

    def stream_at(k: object) -> Stream | None:
        k = _int(k, -1, len(streams) - 1)
        return None if k == -1 else streams[k]

    book = t.book
    for entry in _list(body["gaps"]):
        row, owner = _list(entry, 2)
        book.restore(_gap(row), stream_at(owner))
    for st in streams:
        for r in st.ranges:
            if r.gap_id not in book.active:
                raise _BadFieldError("range of an unknown gap")
    for row in _list(body["closed"]):
        book.restore_closed(_gap(row))
    held: list[list[tuple[float, ProducerReport]]] = [[], []]
    for kept, rows in zip(held, (body["orphans"], body.get("told_orphans", [])), strict=True):
        for o in _list(rows):
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
            kept.append((_float(at), report))
    t.ledger.restore(
        orphans=held[0],
        told_orphans=held[1],
        reporting=[st for st in streams if st.aux is not None and st.aux.reports],
    )
    for y in _list(body["young"]):
        owner, base, at = _list(y, 3)
        young_stream = stream_at(owner)
        if young_stream is None:
            raise _BadFieldError("young stream")
        table.set_baseline(young_stream, _int(base), _float(at))
    for r in _list(body.get("rebase", [])):
        owner, mark = _list(r, 2)
        marked = stream_at(owner)
        if marked is None:
            raise _BadFieldError("rebase stream")
        marked.skip_mark = _int(mark, _I64_MIN, _I64_MAX)
    book.restore_open_at_skip({_str(gid) for gid in _list(body.get("doubtful", []))})
    if version >= SEALED_SINCE:
        _load_sealed(t, body["ring"], ring, streams, records)
        return
    count = _int(body["ring_entries"], 0, len(ring) // 28)
    offsets, seqs, stamps, owners = _unpack_entries(ring, count, version, streams)
    _check_order(offsets)
    t.ring.load(offsets, owners, seqs, stamps, records)


def _unpack_entries(
    ring: bytes, count: int, version: int, streams: list[Stream]
) -> tuple[list[int], list[int], list[int], list[Stream | None]]:
    # ``count`` entries packed by Ring.pack: (offsets, seqs, timestamps, streams).
    if len(ring) != 28 * count:
        raise _BadFieldError("ring size")
    columns = [ring[: 8 * count], ring[8 * count : 16 * count], ring[16 * count : 24 * count]]
    owner_column = ring[24 * count :]
    if version >= SHUFFLED_SINCE:
        columns = [unshuffle_bytes(column, 8) for column in columns]
        owner_column = unshuffle_bytes(owner_column, 4)
    offsets = unpack_column("q", columns[0])
    seqs = unpack_column("Q", columns[1])
    stamps = unpack_column("q", columns[2])
    owner_ids = unpack_column("i", owner_column)
    if owner_ids and not -1 <= min(owner_ids) <= max(owner_ids) < len(streams):
        raise _BadFieldError("ring stream")
    by_index: list[Stream | None] = [*streams, None]  # index -1 is "no stream"
    return offsets, seqs, stamps, list(map(by_index.__getitem__, owner_ids))


def _check_order(offsets: list[int]) -> None:
    if offsets != sorted(offsets):  # timsort on sorted data is one C-level pass
        raise _BadFieldError("ring offsets out of order")


def _load_sealed(
    t: TrackerState,
    spec: object,
    ring_bytes: bytes,
    streams: list[Stream],
    records: int,
) -> None:
    # Version 5's ring: sealed blocks as the ring kept them, then the newest entries.
    if not isinstance(spec, dict):
        raise _BadFieldError("ring")
    size, block = _int(spec["size"], 1), _int(spec["block"], 1, BLOCK_SIZE)
    if size & (size - 1) or block != min(size, BLOCK_SIZE):
        raise _BadFieldError("ring geometry")
    rows = _list(spec["blocks"])
    if len(rows) * block > size + block:
        raise _BadFieldError("ring blocks")
    hot_count = _int(spec["hot"], 0, block)
    hot_bytes, sealed_bytes = ring_bytes[: 28 * hot_count], ring_bytes[28 * hot_count :]
    phase = _int(spec["phase"], 0, block - 1 if rows else hot_count)
    by_index: list[Stream | None] = [*streams, None]  # index -1 is "no stream"
    tables = [
        tuple(by_index[_int(i, -1, len(streams) - 1)] for i in _list(ids))
        for ids in _list(spec["tables"])
    ]
    blocks: list[SealedBlock] = []
    at = 0
    for k, row in enumerate(rows):
        table_index, length = _list(row, 2)
        table = tables[_int(table_index, 0, len(tables) - 1)]
        length = _int(length, 1, len(sealed_bytes) - at)
        sealed = sealed_bytes[at : at + length]
        blocks.append(SealedBlock.from_bytes(k * block, block, sealed, table))
        at += length
    if at != len(sealed_bytes):
        raise _BadFieldError("ring blocks")
    hot = _unpack_entries(hot_bytes, hot_count, VERSION, streams)
    _check_order(
        list(chain.from_iterable(b.offsets() for b in blocks))[phase:]
        + hot[0][max(phase - len(blocks) * block, 0) :]
    )
    ring = t.ring
    if ring.size == size and ring.block_size() == block:
        ring.load_sealed(phase, blocks, hot, records)
        return
    # Another ring size: the entries one by one, the newest that fit.
    offsets: list[int] = []
    seqs: list[int] = []
    stamps: list[int] = []
    owners: list[Stream | None] = []
    for part in [*(b.columns() for b in blocks), hot]:
        offsets += part[0]
        seqs += part[1]
        stamps += part[2]
        owners += part[3]
    ring.load(offsets[phase:], owners[phase:], seqs[phase:], stamps[phase:], records)


# --- field validators ------------------------------------------------------------------


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
