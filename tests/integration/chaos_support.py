"""The chaos scenarios' common parts: the application's own send log, the truth read back
with a plain consumer, gapwatch's findings, and what gapwatch *should* report given both.

Three sources are compared in every scenario, and each is independent of the other two:

* :class:`AppProducer` is the application: it sends through a ``StampedProducer`` and keeps
  its own record of every send's outcome (acknowledged, sent without acks, or failed with
  the error it was told), without asking gapwatch.
* :func:`read_truth` reads the whole topic back with a plain ``AIOKafkaConsumer``; the only
  gapwatch code it uses is ``parse_stamp`` to read the three headers.
* :func:`gapwatch_findings` asks the monitor over HTTP (``/gaps``, ``/streams``,
  ``/metrics``), as a user would.

:func:`expected_gaps` turns the first two into the gaps the tracker's documented rules
(docs/tracker.md) must produce, so every scenario asserts equality, not a bound.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaClient, AIOKafkaConsumer, TopicPartition
from aiokafka.client import CoordinationType
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest
from monitor_support import metric_value, monitor_config, start_monitor
from prometheus_client import CollectorRegistry

from gapwatch.commands.gaptable import render_gaps
from gapwatch.core.wire import parse_stamp
from gapwatch.monitor.app import RunningMonitor
from gapwatch.monitor.config import ReportSettings, TrackerSettings
from gapwatch.producer import ReportConfig, StampedProducer
from gapwatch.testing.kafka import KafkaCluster, PartitionState

# Short enough for quick scenarios, long enough that the monitor reads past a fetch or two
# after a gap opens (it fetches every 100 ms), so confirmation is never the slow part.
GRACE_S = 2.0
REPORT_INTERVAL_S = 0.5  # the applications' producer report interval

ACKED = "acked"
SENT = "sent"  # acks=0: written to the socket, no acknowledgement asked for
FAILED = "failed"


class Progress:
    """Readable progress lines for ``make chaos`` (pytest ``-s``), with elapsed seconds."""

    def __init__(self, scenario: str) -> None:
        self.scenario = scenario
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        """Seconds since the scenario started."""
        return time.monotonic() - self.started

    def step(self, message: str) -> None:
        """Print one progress line."""
        print(f"[{self.scenario} {self.elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)

    def block(self, title: str, text: str) -> None:
        """Print a titled, indented block (summaries and pasted tables)."""
        lines = "\n".join("    " + line for line in text.splitlines())
        print(
            f"[{self.scenario} {self.elapsed:6.1f}s] {title}\n{lines}", file=sys.stderr, flush=True
        )


def spans(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted sequences as inclusive runs: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    out: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


def show_spans(seqs: Iterable[int]) -> str:
    """Runs as text: ``20..29, 35`` (``none`` if empty)."""
    runs = spans(seqs)
    if not runs:
        return "none"
    return ", ".join(f"{a}..{b}" if a != b else str(a) for a, b in runs)


# --- the application ------------------------------------------------------------------


@dataclass
class AppProducer:
    """An application sending stamped records to one topic and noting every outcome itself.

    Each record's value is the application's own counter for that partition. Every send that
    gets a sequence uses the next one, so the counter *is* the sequence; :meth:`close` checks
    that against the producer's report and the truth check compares value and stamp.
    """

    producer: StampedProducer
    topic: str
    # (partition, seq) -> ACKED | SENT | FAILED:<error class>
    outcomes: dict[tuple[int, int], str] = field(default_factory=dict)
    # partition -> the next sequence to send (so also the count sent)
    _next: Counter[int] = field(default_factory=Counter)
    _pending: list[tuple[int, int, asyncio.Future[Any]]] = field(default_factory=list)
    _closed: bool = False

    @classmethod
    async def start(
        cls,
        cluster: KafkaCluster,
        topic: str,
        report_topic: str,
        *,
        producer_id: str,
        **kwargs: Any,
    ) -> AppProducer:
        """A started producer (``kwargs`` go to aiokafka: acks, timeouts, idempotence)."""
        producer = StampedProducer(
            bootstrap_servers=cluster.bootstrap_servers,
            producer_id=producer_id,
            reports=ReportConfig(topic=report_topic, interval_s=REPORT_INTERVAL_S),
            registry=None,
            linger_ms=5,
            **kwargs,
        )
        await producer.start()
        return cls(producer=producer, topic=topic)

    @property
    def stream(self) -> tuple[str, int]:
        """(producer id, epoch): this life of the producer."""
        return (self.producer.producer_id, self.producer.epoch)

    async def send(self, partition: int = 0) -> asyncio.Future[Any] | None:
        """Send the next record; an error raised by ``send`` itself is noted, not raised."""
        seq = self._next[partition]
        self._next[partition] += 1
        try:
            future = await self.producer.send(self.topic, b"%d" % seq, partition=partition)
        except KafkaError as exc:
            self.outcomes[(partition, seq)] = f"{FAILED}:{type(exc).__name__}"
            return None
        self._pending.append((partition, seq, future))
        return future

    async def send_and_wait(self, partition: int = 0) -> str:
        """Send one record and wait for its outcome; returns it."""
        seq = self._next[partition]
        future = await self.send(partition)
        if future is not None:
            await asyncio.wait([future])
        await self.settle()
        return self.outcomes[(partition, seq)]

    async def settle(self, *, timeout_s: float = 60.0) -> None:
        """Wait for the outcome of every send so far and note it."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        results = await asyncio.wait_for(
            asyncio.gather(*(f for _, _, f in pending), return_exceptions=True), timeout_s
        )
        acks0 = self.producer.acks == "0"
        for (partition, seq, _), result in zip(pending, results, strict=True):
            if isinstance(result, BaseException):
                self.outcomes[(partition, seq)] = f"{FAILED}:{type(result).__name__}"
            else:
                self.outcomes[(partition, seq)] = SENT if acks0 else ACKED

    async def close(self, *, timeout_s: float = 60.0) -> None:
        """Settle, then stop with a final report; check the counter matched the stamps."""
        await self.settle(timeout_s=timeout_s)
        reports = {r.partition: r for r in self.producer.reports()}
        self._closed = True
        try:
            await asyncio.wait_for(self.producer.stop(), timeout_s)
        except KafkaError as exc:
            # aiokafka's sender task can die (see is_broken); the final report is still
            # published, through the separate report producer.
            print(f"producer {self.stream[0]} stopped with {exc!r}", file=sys.stderr)
        for partition, count in self._next.items():
            assert reports[partition].highest_assigned == count - 1, "counter != sequence"

    async def abort(self) -> None:
        """Stop without a final report if :meth:`close` was not reached (test cleanup)."""
        if not self._closed:
            self._closed = True
            await self.producer.stop(final_report=False)

    @property
    def is_broken(self) -> bool:
        """Whether aiokafka's sender task died (seen once with ``acks=0`` across a broker
        kill); every later send then fails."""
        return self.producer.has_dead_sender

    def sent(self, partition: int = 0) -> int:
        """How many sends to ``partition`` got a sequence."""
        return self._next[partition]

    def sent_by_partition(self) -> dict[int, int]:
        """:meth:`sent` of every partition this application sent to."""
        return dict(self._next)

    def seqs(self, partition: int, kind: str) -> set[int]:
        """Sequences of ``partition`` whose outcome starts with ``kind``."""
        return {s for (p, s), o in self.outcomes.items() if p == partition and o.startswith(kind)}

    def summary(self) -> str:
        """One line per partition: sequences by outcome."""
        lines = []
        for partition in sorted(self._next):
            errors = Counter(
                o.split(":", 1)[1]
                for (p, _), o in self.outcomes.items()
                if p == partition and o.startswith(FAILED)
            )
            lines.append(
                f"{self.stream[0]} epoch {self.stream[1]} p{partition}: "
                f"{self._next[partition]} sent; "
                f"acked {show_spans(self.seqs(partition, ACKED))}; "
                f"no-ack {show_spans(self.seqs(partition, SENT))}; "
                f"failed {show_spans(self.seqs(partition, FAILED))} {dict(errors) or ''}"
            )
        return "\n".join(lines)


# --- the truth: the log read back with a plain consumer -----------------------------------


StreamId = tuple[int, str, int]  # (partition, producer, epoch)


@dataclass(frozen=True)
class Truth:
    """What the topic really holds: each stream's sequences in offset order."""

    seqs: dict[StreamId, list[int]]
    end_offsets: dict[int, int]

    def present(self, stream: StreamId) -> set[int]:
        """Sequences of ``stream`` in the log at least once."""
        return set(self.seqs.get(stream, []))

    def missing(self, stream: StreamId, sent: int) -> set[int]:
        """Sequences ``0..sent-1`` not in the log."""
        return set(range(sent)) - self.present(stream)

    def duplicates(self, stream: StreamId) -> dict[int, int]:
        """seq -> extra copies, for sequences in the log more than once."""
        return {s: n - 1 for s, n in Counter(self.seqs.get(stream, [])).items() if n > 1}

    def duplicate_count(self, partition: int) -> int:
        """Extra copies on ``partition``, all streams."""
        return sum(sum(self.duplicates(s).values()) for s in self.seqs if s[0] == partition)

    def is_ordered(self, stream: StreamId) -> bool:
        """Whether the stream's first copies appear in sequence order."""
        firsts = list(dict.fromkeys(self.seqs.get(stream, [])))
        return firsts == sorted(firsts)


async def read_truth(cluster: KafkaCluster, topic: str, *, timeout_s: float = 30.0) -> Truth:
    """Every record of ``topic`` up to its high watermark, with a plain aiokafka consumer."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=cluster.bootstrap_servers,
        enable_auto_commit=False,
        request_timeout_ms=10_000,
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        partitions = await cluster.partitions(topic, timeout_s=deadline - time.monotonic())
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        seqs: dict[StreamId, list[int]] = {}
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, "timed out reading the topic back"
            for tp, records in (await consumer.getmany(*tps, timeout_ms=500)).items():
                for r in records:
                    if r.offset >= ends[tp]:
                        continue
                    stamp = parse_stamp(r.headers)
                    assert stamp is not None, f"unstamped record at {tp} offset {r.offset}"
                    assert r.value == b"%d" % stamp.seq, "value is not the app's counter"
                    key = (tp.partition, stamp.producer, stamp.epoch)
                    seqs.setdefault(key, []).append(stamp.seq)
        return Truth(seqs=seqs, end_offsets={tp.partition: ends[tp] for tp in tps})
    finally:
        await consumer.stop()


# --- what gapwatch must report ---------------------------------------------------------

GapKey = tuple[int, str, int, int, int, bool]  # partition, producer, epoch, first, last, told


def expected_gaps(apps: Iterable[AppProducer], truth: Truth) -> set[GapKey]:
    """The confirmed gaps gapwatch must report, from the application's outcomes and the log
    alone, by the tracker's documented rules (docs/tracker.md):

    * R5: every run of missing sequences between a stream's first and last record in the
      log is a gap, split where the application's outcome changes: failed sends are
      ``producer_told`` gaps, sends it thought written are not (R12);
    * R12, the final report: missing sequences after the last record in the log, up to the
      highest the application saw acknowledged, are ``tail`` gaps, split the same way
      (told where the sends failed, silent elsewhere); above that, each run
      of failed sends is a ``producer`` gap, ``producer_told``; sends the application
      thought written (``acks=0``) are an ``UnknownFate``, not a gap.

    The scenarios send healthy records first, which :func:`assert_starts_in_log` checks, so
    head loss (invisible by design, R2) does not arise.
    """
    out: set[GapKey] = set()
    for app in apps:
        producer, epoch = app.stream
        for partition, sent in app.sent_by_partition().items():
            stream = (partition, producer, epoch)
            failed = app.seqs(partition, FAILED)
            acked = app.seqs(partition, ACKED)
            present = truth.present(stream)
            high = max(present)
            for first, last in spans(s for s in truth.missing(stream, sent) if s < high):
                failed_here = {s for s in range(first, last + 1) if s in failed}
                for a, b in spans(failed_here):
                    out.add((partition, producer, epoch, a, b, True))
                for a, b in spans(set(range(first, last + 1)) - failed_here):
                    out.add((partition, producer, epoch, a, b, False))
            top_acked = max(acked, default=-1)
            if top_acked > high:
                tail = set(range(high + 1, top_acked + 1))
                for a, b in spans(tail & failed):
                    out.add((partition, producer, epoch, a, b, True))
                for a, b in spans(tail - failed):
                    out.add((partition, producer, epoch, a, b, False))
            above = max(high, top_acked)
            for first, last in spans(s for s in failed if s > above):
                out.add((partition, producer, epoch, first, last, True))
    return out


def _interior_runs(truth: Truth, stream: StreamId, sent: int) -> list[tuple[int, int]]:
    """Runs of missing sequences below the stream's last record in the log."""
    high = max(truth.present(stream), default=-1)
    return spans(s for s in truth.missing(stream, sent) if s < high)


def split_by_outcome(apps: Iterable[AppProducer], truth: Truth) -> set[GapKey]:
    """The interior gaps with ``producer_told`` right for every sequence: each missing run
    split where the application's outcome changes between failed and thought-written."""
    out: set[GapKey] = set()
    for app in apps:
        producer, epoch = app.stream
        for partition, sent in app.sent_by_partition().items():
            failed = app.seqs(partition, FAILED)
            for first, last in _interior_runs(truth, (partition, producer, epoch), sent):
                told = {s for s in range(first, last + 1) if s in failed}
                for a, b in spans(told):
                    out.add((partition, producer, epoch, a, b, True))
                for a, b in spans(set(range(first, last + 1)) - told):
                    out.add((partition, producer, epoch, a, b, False))
    return out


def assert_starts_in_log(apps: Iterable[AppProducer], truth: Truth) -> None:
    """Each stream's first sequence is in the log (the scenarios' precondition)."""
    for app in apps:
        producer, epoch = app.stream
        for partition in app.sent_by_partition():
            assert 0 in truth.present((partition, producer, epoch)), (
                f"{producer}/{epoch} p{partition}: first record not in the log"
            )


def mixed_gaps(apps: Iterable[AppProducer], truth: Truth) -> list[tuple[int, str, int, int, int]]:
    """Interior missing runs holding both failed sends and sends the application thought
    succeeded, as (partition, producer, epoch, first, last)."""
    out = []
    for app in apps:
        producer, epoch = app.stream
        for partition, sent in app.sent_by_partition().items():
            failed = app.seqs(partition, FAILED)
            for first, last in _interior_runs(truth, (partition, producer, epoch), sent):
                told = {s for s in range(first, last + 1) if s in failed}
                if told and len(told) != last - first + 1:
                    out.append((partition, producer, epoch, first, last))
    return out


# --- what gapwatch reports --------------------------------------------------------------


@dataclass(frozen=True)
class Findings:
    """gapwatch's answer, read over HTTP like a user would."""

    gaps: list[dict[str, Any]]
    partitions: list[dict[str, Any]]
    metrics: str

    def keys(self, state: str) -> set[GapKey]:
        """Gaps in ``state`` as comparable tuples."""
        return {
            (
                g["partition"],
                g["producer"],
                g["epoch"],
                g["first_seq"],
                g["last_seq"],
                g["producer_told"],
            )
            for g in self.gaps
            if g["state"] == state
        }

    def metric(self, name: str, topic: str, partition: int) -> float:
        """One per-partition sample of ``/metrics``."""
        return metric_value(self.metrics, name, topic=topic, partition=str(partition))

    def total(self, name: str) -> float:
        """A sample without labels (process metrics)."""
        return metric_value(self.metrics, name)

    def table(self) -> str:
        """The gaps as ``gapwatch gaps`` prints them."""
        return render_gaps(sorted(self.gaps, key=lambda g: (g["partition"], g["first_seq"])))


async def gapwatch_findings(monitor: RunningMonitor, topic: str) -> Findings:
    """``/gaps`` for ``topic``, ``/streams`` and ``/metrics`` of one monitor instance."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{monitor.http_port}") as http:
        gaps = (await http.get("/gaps", params={"topic": topic, "limit": 5000})).json()
        streams = (await http.get("/streams")).json()
        metrics = (await http.get("/metrics")).text
    partitions = [p for p in streams["partitions"] if p["topic"] == topic]
    return Findings(gaps=gaps["gaps"], partitions=partitions, metrics=metrics)


async def monitor_partition(
    monitor: RunningMonitor, topic: str, partition: int = 0
) -> dict[str, Any] | None:
    """The monitor's ``/streams`` entry for one partition (``None`` if not owned)."""
    for p in (await gapwatch_findings(monitor, topic)).partitions:
        if p["partition"] == partition:
            return p
    return None


async def wait_monitor_position(
    monitor: RunningMonitor, topic: str, position: int, *, partition: int = 0
) -> None:
    """Wait until the monitor's next offset to read on ``partition`` is ``position``."""

    async def check() -> bool:
        p = await monitor_partition(monitor, topic, partition)
        return p is not None and p["position"] == position

    await wait_for(check, f"monitor position {position} on p{partition}")


async def start_chaos_monitor(
    cluster: KafkaCluster,
    topic: str,
    report_topic: str,
    *,
    group_id: str | None = None,
    instance_id: str | None = None,
    checkpoint_interval: float | None = None,
    grace_period: float = GRACE_S,
) -> RunningMonitor:
    """A monitor of ``topic`` with a short grace period reading ``report_topic``
    (checkpoints every 0.5 s unless ``checkpoint_interval`` says otherwise)."""
    config = monitor_config(cluster.bootstrap_servers, [topic], group_id or f"g-{topic}")
    config = dataclasses.replace(
        config,
        tracker=TrackerSettings(grace_period=grace_period),
        reports=ReportSettings(topic=report_topic, enabled=True),
    )
    if checkpoint_interval is not None:
        config = dataclasses.replace(
            config,
            checkpoints=dataclasses.replace(config.checkpoints, interval=checkpoint_interval),
        )
    if instance_id is None:
        return await start_monitor(config)
    monitor = RunningMonitor(config, registry=CollectorRegistry(), instance_id=instance_id)
    await monitor.start()
    return monitor


async def settle_monitor(
    monitor: RunningMonitor, topic: str, truth: Truth, *, within: float = 45.0
) -> Findings:
    """Wait until the monitor has read to the log end, applied reports and has no open
    gap, then past one more grace period (a false claim would be confirmed by then)."""
    deadline = time.monotonic() + within
    last: Findings | None = None
    while time.monotonic() < deadline:
        last = await gapwatch_findings(monitor, topic)
        positions = {p["partition"]: p["position"] for p in last.partitions}
        if positions == truth.end_offsets and not last.keys("open"):
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"monitor did not settle; last: {last}")
    await asyncio.sleep(monitor.config.tracker.grace_period + 1.0)
    findings = await gapwatch_findings(monitor, topic)
    assert not findings.keys("open"), findings.table()
    return findings


# --- cluster helpers ----------------------------------------------------------------------


async def describe(cluster: KafkaCluster, topic: str, partition: int = 0) -> PartitionState:
    """``describe_partition``, retried while a paused node makes the admin client time out."""
    for _ in range(20):
        try:
            return await cluster.describe_partition(topic, partition)
        except KafkaError:
            await asyncio.sleep(0.25)
    return await cluster.describe_partition(topic, partition)


async def wait_for(
    check: Callable[[], Awaitable[Any]], what: str, *, within: float = 30.0, every: float = 0.2
) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await check()
        except KafkaError as exc:  # a paused or dead node answered nothing
            last = exc
        else:
            if last:
                return last
        await asyncio.sleep(every)
    raise AssertionError(f"{what}: not within {within}s; last: {last!r}")


async def wait_isr(
    cluster: KafkaCluster, topic: str, isr: set[int], *, partition: int = 0, within: float = 30.0
) -> PartitionState:
    """Wait until the ISR is exactly ``isr``."""

    async def check() -> PartitionState | None:
        state = await cluster.describe_partition(topic, partition)
        return state if set(state.isr) == isr else None

    result: PartitionState = await wait_for(check, f"ISR == {sorted(isr)}", within=within)
    return result


class IsrProbe:
    """Reads a partition's ISR from one chosen broker's metadata over a connection opened
    beforehand: answers in milliseconds while another node is paused, where the test bed's
    admin helpers may pick the paused node and wait out their 3 s timeout (longer than the
    pause this probe has to fit in)."""

    def __init__(self, cluster: KafkaCluster, node_id: int) -> None:
        self._node_id = node_id
        self._client = AIOKafkaClient(
            bootstrap_servers=cluster.node_bootstrap(node_id), request_timeout_ms=2000
        )

    async def __aenter__(self) -> IsrProbe:
        await self._client.bootstrap()
        await self.isr("")  # open the connection now, not during the fault
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.close()

    async def isr(self, topic: str, partition: int = 0) -> set[int]:
        """The ISR that broker's metadata cache holds (empty for an unknown topic)."""
        response = await self._client.send(self._node_id, MetadataRequest([topic or "-"]))
        for entry in response.to_object()["topics"]:
            for p in entry["partitions"]:
                if entry["topic"] == topic and p["partition"] == partition:
                    return set(p["isr"])
        return set()


async def group_coordinator(cluster: KafkaCluster, group: str) -> int:
    """The node.id of ``group``'s coordinator.

    A SIGSTOPped group coordinator accepts connections and answers nothing: the monitor
    keeps reading (its commits fail outside the consumer lock, see
    ``test_monitor_liveness.py``), but the group's session expires and it rebalances.
    Scenarios that pause a node for another reason place their topic off the coordinator,
    so that rebalance does not blur what they measure. They place the topic rather than
    search for a group: leader rebalancing is off in the test cluster, so earlier faults
    can leave every offsets partition led by one node.
    """
    client = AIOKafkaClient(bootstrap_servers=cluster.bootstrap_servers)
    await client.bootstrap()
    try:

        async def lookup() -> int:
            # The first group of a fresh cluster creates __consumer_offsets: retried.
            return int(await client.coordinator_lookup(CoordinationType.GROUP, group)) + 1

        return await wait_for(lookup, f"coordinator of {group}") - 1
    finally:
        await client.close()


def gap_json(findings: Findings, limit: int = 2) -> str:
    """The first ``limit`` gaps as JSON, as ``GET /gaps`` returns them (for the docs)."""
    return "\n".join(json.dumps(g, sort_keys=True) for g in findings.gaps[:limit])
