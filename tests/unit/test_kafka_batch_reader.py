"""Reading fetched record batches directly against aiokafka's own ``PartitionRecords``.

No broker: the fetch responses are built with aiokafka's own record batch builders (v2
batches plain and compressed, transactional batches with commit and abort markers, legacy
v0/v1 message sets) and read twice, by aiokafka's public iteration (what ``getmany()``
returns) and by the direct path of :class:`~gapwatch.kafka.aiokafka_consumer.RecordFetcher`.
Both must hand out the same records in the same chunks and leave the same next fetch
offset, and the monitor's record path must make the same decisions from either.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.codec import has_gzip, has_lz4, has_snappy, has_zstd
from aiokafka.consumer.fetcher import READ_COMMITTED, READ_UNCOMMITTED, PartitionRecords
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from aiokafka.record.legacy_records import LegacyRecordBatch, LegacyRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.record.util import calc_crc32c
from hypothesis import given, settings
from hypothesis import strategies as st

from gapwatch.core.events import Event
from gapwatch.core.stamps import StampReader
from gapwatch.core.tracker import PartitionTracker
from gapwatch.core.wire import encode_stamp
from gapwatch.kafka.aiokafka_consumer import BatchReader
from gapwatch.monitor.ingest.recordpath import feed_records

TP = TopicPartition("t", 0)
NOW = 1_700_000_000.0
BASE_TS = 1_699_999_000_000
CODECS = {
    "none": (True, DefaultRecordBatch.CODEC_NONE),
    "gzip": (has_gzip(), DefaultRecordBatch.CODEC_GZIP),
    "snappy": (has_snappy(), DefaultRecordBatch.CODEC_SNAPPY),
    "lz4": (has_lz4(), DefaultRecordBatch.CODEC_LZ4),
    "zstd": (has_zstd(), DefaultRecordBatch.CODEC_ZSTD),
}
INSTALLED_CODECS = [code for installed, code in CODECS.values() if installed]
# v2 batch header: base offset (8), length (4), leader epoch (4), magic (1), CRC (4), then
# the attributes (2) and the last offset delta (4) the CRC covers.
CRC_AT, ATTRIBUTES_AT, LAST_DELTA_AT = 17, 21, 23
CONTROL_FLAG = 0x20

Headers = list[tuple[str, bytes | None]]


@dataclass(frozen=True)
class Batch:
    """One record batch of a fetch response, as a test describes it."""

    headers: tuple[Headers, ...]
    codec: int = 0
    producer_id: int = -1  # >= 0: a transactional batch of that producer
    marker: str | None = None  # "commit" or "abort": a control batch of producer_id
    extra_tail: int = 0  # offsets after the last record removed by compaction
    corrupt: bool = False


def build_v2(base_offset: int, batch: Batch) -> bytes:
    transactional = batch.producer_id >= 0
    builder = DefaultRecordBatchBuilder(
        2, batch.codec, int(transactional), batch.producer_id, 0, -1, 10**8
    )
    if batch.marker is not None:
        key = struct.pack(">hh", 0, 0 if batch.marker == "abort" else 1)
        builder.append(0, BASE_TS, key, struct.pack(">hi", 0, 0), [])
    else:
        for delta, headers in enumerate(batch.headers):
            builder.append(delta, BASE_TS + base_offset + delta, None, b"v" * 20, headers)
    data = builder.build()
    data[0:8] = struct.pack(">q", base_offset)
    if batch.marker is not None:
        attributes = struct.unpack_from(">h", data, ATTRIBUTES_AT)[0] | CONTROL_FLAG
        struct.pack_into(">h", data, ATTRIBUTES_AT, attributes)
    if batch.extra_tail:
        last = struct.unpack_from(">i", data, LAST_DELTA_AT)[0]
        struct.pack_into(">i", data, LAST_DELTA_AT, last + batch.extra_tail)
    struct.pack_into(">I", data, CRC_AT, calc_crc32c(bytes(data[ATTRIBUTES_AT:])))
    if batch.corrupt:
        data[-1] ^= 0xFF
    return bytes(data)


def batch_size(batch: Batch) -> int:
    return (1 if batch.marker else len(batch.headers)) + batch.extra_tail


def build_log(batches: list[Batch], first_offset: int = 0) -> tuple[bytes, int]:
    """The bytes of a fetch response holding ``batches`` back to back, and its end."""
    data, offset = b"", first_offset
    for batch in batches:
        data += build_v2(offset, batch)
        offset += batch_size(batch)
    return data, offset


def partition_records(
    data: bytes, *, fetch_offset: int = 0, committed: bool = False, aborted: Any = None
) -> PartitionRecords:
    isolation = READ_COMMITTED if committed else READ_UNCOMMITTED
    return PartitionRecords(
        TP, MemoryRecords(data), aborted, fetch_offset, None, None, True, isolation
    )


def view(records: list[Any]) -> list[tuple[int, int, tuple[tuple[str, bytes | None], ...]]]:
    return [(r.offset, r.timestamp, tuple(r.headers)) for r in records]


def public_chunks(owner: PartitionRecords, limit: int) -> list[tuple[list[Any], int]]:
    """What successive ``getmany(max_records=limit)`` calls take, as ``FetchResult.getall``
    takes it: (records, next fetch offset) per call, until the records run out."""
    chunks = []
    while True:
        taken: list[Any] = []
        for record in owner:
            taken.append(record)
            if len(taken) >= limit:
                break
        else:
            chunks.append((taken, owner.next_fetch_offset))
            return chunks
        chunks.append((taken, owner.next_fetch_offset))


def direct_chunks(owner: PartitionRecords, limit: int) -> list[tuple[list[Any], int]]:
    reader = BatchReader.of(owner)
    assert reader is not None
    chunks = []
    while True:
        taken = reader.take(limit)
        chunks.append((taken, owner.next_fetch_offset))
        if reader.is_exhausted():
            return chunks


def same_chunks(public: list[tuple[list[Any], int]], direct: list[tuple[list[Any], int]]) -> None:
    """Same records in the same calls and the same final position; after a call the
    direct position may only be ahead where compaction left offsets without records at the
    end of a batch, never past a record not handed out yet."""
    assert [view(r) for r, _ in direct if r] == [view(r) for r, _ in public if r]
    assert direct[-1][1] == public[-1][1]
    public_next = {r[-1].offset: position for r, position in public if r}
    handed_out = [chunk for chunk in direct if chunk[0]]
    later_firsts = [*(r[0].offset for r, _ in handed_out[1:]), direct[-1][1]]
    for (records, position), next_first in zip(
        handed_out, later_firsts[: len(handed_out)], strict=True
    ):
        assert public_next[records[-1].offset] <= position <= next_first


STAMP = st.builds(
    lambda producer, seq: list(encode_stamp(producer, 1, seq)),
    st.sampled_from(["p1", "p2"]),
    st.integers(0, 30),
)
ODD_HEADERS = st.lists(
    st.tuples(
        st.sampled_from(["gapwatch-producer", "gapwatch-epoch", "gapwatch-seq", "x"]),
        st.one_of(st.none(), st.binary(max_size=5), st.sampled_from([b"p1", b"1", b"7x"])),
    ),
    max_size=4,
)
PLAIN_BATCH = st.builds(
    lambda headers, codec, tail: Batch(tuple(headers), codec=codec, extra_tail=tail),
    st.lists(st.one_of(STAMP, STAMP, ODD_HEADERS), min_size=1, max_size=12),
    st.sampled_from(INSTALLED_CODECS),
    st.sampled_from([0, 0, 0, 2]),
)


class TestSameRecordsAsPublicIteration:
    @settings(max_examples=150, deadline=None)
    @given(
        st.lists(PLAIN_BATCH, min_size=1, max_size=6),
        st.integers(1, 40),
        st.integers(0, 10),
    )
    def test_any_batches_any_limit_any_fetch_offset(
        self, batches: list[Batch], limit: int, skip: int
    ) -> None:
        """Plain and compressed batches (every codec installed), compacted tails, a fetch
        offset in the middle of the first batch, any ``max_records``: the same records per
        call and the same next fetch offset at the end."""
        data, _ = build_log(batches)
        public = public_chunks(partition_records(data, fetch_offset=skip), limit)
        direct = direct_chunks(partition_records(data, fetch_offset=skip), limit)
        same_chunks(public, direct)

    @pytest.mark.parametrize("name", [name for name, (ok, _) in CODECS.items() if ok])
    def test_each_installed_codec(self, name: str) -> None:
        """A compressed batch of stamped records reads the same on both paths."""
        codec = CODECS[name][1]
        batches = [Batch(tuple(list(encode_stamp("p", 1, s)) for s in range(50)), codec=codec)]
        data, end = build_log(batches, first_offset=100)
        public = public_chunks(partition_records(data, fetch_offset=100), 1000)
        direct = direct_chunks(partition_records(data, fetch_offset=100), 1000)
        same_chunks(public, direct)
        assert len(direct[0][0]) == 50
        assert direct[-1][1] == end

    @settings(max_examples=150, deadline=None)
    @given(
        st.lists(
            st.tuples(st.integers(0, 2), st.sampled_from(["data", "data", "commit", "abort"])),
            min_size=1,
            max_size=10,
        ),
        st.booleans(),
        st.integers(1, 12),
    )
    def test_transactions_control_batches_and_aborts(
        self, steps: list[tuple[int, str]], committed: bool, limit: int
    ) -> None:
        """Transactional batches of three producers with commit and abort markers, read
        committed (aborted transactions skipped, from the fetch response's list) or not:
        the same records and positions; control batches are never handed out."""
        batches: list[Batch] = []
        aborted: list[tuple[int, int]] = []
        offset, open_since = 0, {}
        for producer, kind in steps:
            pid = 1000 + producer
            if kind == "data":
                stamps = tuple(list(encode_stamp(f"p{producer}", 1, offset + i)) for i in range(3))
                batches.append(Batch(stamps, producer_id=pid))
                open_since.setdefault(pid, offset)
            else:
                batches.append(Batch((), producer_id=pid, marker=kind))
                first = open_since.pop(pid, None)
                if kind == "abort" and first is not None:
                    aborted.append((pid, first))
            offset += batch_size(batches[-1])
        data, end = build_log(batches)
        public = public_chunks(partition_records(data, committed=committed, aborted=aborted), limit)
        direct = direct_chunks(partition_records(data, committed=committed, aborted=aborted), limit)
        same_chunks(public, direct)
        assert direct[-1][1] == end

    @pytest.mark.parametrize(
        ("magic", "codec"), [(0, 0), (1, 0), (1, LegacyRecordBatch.CODEC_GZIP)]
    )
    def test_legacy_message_sets(self, magic: int, codec: int) -> None:
        """v0 and v1 message sets (no headers; v0 has no timestamps), plain and compressed,
        read from their start and middle: the same records on both paths. (Read from the
        middle of plain ones, aiokafka hands out the record before the fetch offset too: a
        skipped one-message set moves its next fetch offset back. Kept as it is.)"""
        data = b""
        for first in (0, 5):
            builder = LegacyRecordBatchBuilder(magic, codec, 10**6)
            for i in range(5):
                timestamp = BASE_TS + first + i if magic else None
                builder.append(i if codec else first + i, timestamp, None, b"value")
            built = builder.build()
            if codec:  # the wrapper message carries the last inner offset
                built[0:8] = struct.pack(">q", first + 4)
            data += bytes(built)
        for fetch_offset, limit in ((0, 100), (2, 3), (7, 1)):
            public = public_chunks(partition_records(data, fetch_offset=fetch_offset), limit)
            direct = direct_chunks(partition_records(data, fetch_offset=fetch_offset), limit)
            same_chunks(public, direct)
            if fetch_offset == 0:
                assert [r.offset for chunk, _ in direct for r in chunk] == list(range(10))


class TestEdges:
    def test_a_corrupt_batch_raises_after_the_records_before_it(self) -> None:
        """A batch failing its CRC: the records of the batches before it are handed out
        first, then ``CorruptRecordException``, and the position stays at the bad batch so
        that it is fetched again (aiokafka's own iteration raises there too)."""
        good = Batch(tuple(list(encode_stamp("p", 1, s)) for s in range(4)))
        bad = Batch(tuple(list(encode_stamp("p", 1, s)) for s in range(4, 8)), corrupt=True)
        data, _ = build_log([good, bad])
        owner = partition_records(data)
        reader = BatchReader.of(owner)
        assert reader is not None
        assert [r.offset for r in reader.take(100)] == [0, 1, 2, 3]
        assert owner.next_fetch_offset == 4
        assert not reader.is_exhausted()
        with pytest.raises(CorruptRecordException):
            reader.take(100)
        assert owner.next_fetch_offset == 4
        assert reader.is_exhausted()
        assert reader.take(100) == []
        with pytest.raises(CorruptRecordException):
            list(partition_records(data))

    def test_public_iteration_continues_where_the_direct_path_stopped(self) -> None:
        """``getmany()`` on the same consumer after the direct path cut a batch: the public
        iteration goes on from the next record, as ``ConsumerRecord`` objects."""
        batches = [
            Batch(tuple(list(encode_stamp("p", 1, s + 10 * b)) for s in range(6))) for b in range(3)
        ]
        data, end = build_log(batches)
        expected = view(list(partition_records(data)))
        owner = partition_records(data)
        reader = BatchReader.of(owner)
        assert reader is not None
        head = reader.take(8)
        assert owner.next_fetch_offset == 8
        rest = list(owner)
        assert view(head + rest) == expected
        assert type(rest[0]).__name__ == "ConsumerRecord"
        assert owner.next_fetch_offset == end

    def test_no_takeover_once_public_iteration_started(self) -> None:
        """A ``PartitionRecords`` aiokafka has started iterating is left to it."""
        data, _ = build_log([Batch(tuple(list(encode_stamp("p", 1, s)) for s in range(3)))])
        owner = partition_records(data)
        next(owner)
        assert BatchReader.of(owner) is None


class TestTrackerDecisions:
    @settings(max_examples=100, deadline=None)
    @given(st.lists(PLAIN_BATCH, min_size=1, max_size=6), st.integers(1, 25))
    def test_record_path_decides_the_same_from_either(
        self, batches: list[Batch], limit: int
    ) -> None:
        """Stamped, unstamped and malformed records, duplicates and gaps, fed through the
        monitor's record path chunk by chunk: the same events and counters."""
        data, _ = build_log(batches)
        outcomes = []
        for chunks in (
            public_chunks(partition_records(data), limit),
            direct_chunks(partition_records(data), limit),
        ):
            tracker, stamps, events = PartitionTracker("t", 0), StampReader(), list[Event]()
            for records, _ in chunks:
                feed_records(
                    records, tracker=tracker, stamps=stamps, latency=None, now=NOW, events=events
                )
            outcomes.append((events, tracker.counters.as_dict(), sorted(map(repr, tracker.gaps()))))
        assert outcomes[0] == outcomes[1]
