"""Memory kept per confirmed gap, holder by holder (a script, not a test).

Real trackers make real confirmed gaps (4 producer ids per partition, one missing record
every few records, confirmed by the next read position), and their events go through the
real holders as the monitor wires them:

* the tracker itself (gaps watched for late records, then its closed history);
* the gap store (``/gaps?scope=local``);
* the fleet view fed by this instance's own events, then also by the gap log round trip
  (``encode_change``, ``decode_change``, applied as the gap log reader applies it);
* the fleet view holding another instance's gaps (decoded from the log only);
* the ``/events`` replay buffer (two changes per gap: opened, confirmed);
* the alert book, the origin book (on a mirrored topic);
* the ``/gaps`` encoder's cache, per entry (it keeps what the last two pages used).

Each figure is tracemalloc's traced memory after a full GC with the holder, minus the
same without it, over the same seeded workload, divided by the number of confirmed gaps:
what one more kept gap costs in that holder, the gap records it alone keeps alive
included. Holders share gap records where they can, so "together" (the tracker, the gap
store, the fleet view and ``/events`` as the monitor wires them) is less than the sum of
their lines.

    .venv/bin/python bench/bench_gapmem.py [--gaps 20000] [--partitions 24]

The tracker keeps confirmed gaps watched for late records (``max_tracked_gaps``, 10,000
per partition) and then a closed history (``max_closed_gaps``, 1,000 per partition); with
the defaults both per-partition limits stay far from full here, so every gap is kept.
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from gapwatch.alerting.alertbook import AlertBook
from gapwatch.alerting.alertpolicy import AlertPolicy
from gapwatch.alerting.changes import changes_from_events, decode_change, encode_change
from gapwatch.alerting.eventhub import EventHub
from gapwatch.alerting.fleet import FleetFeed, FleetStore
from gapwatch.alerting.strings import StringTable
from gapwatch.core.config import TrackerConfig
from gapwatch.core.events import Event, GapConfirmed
from gapwatch.core.origin import Attribution, Origin, Reason
from gapwatch.core.tracker import PartitionTracker
from gapwatch.core.wire import Stamp
from gapwatch.gaps.encoding import GapEncoder
from gapwatch.gaps.origins import OriginBook
from gapwatch.gaps.store import GapStore

TOPIC = "eu.orders"  # a MirrorMaker 2 copy of "orders" from cluster "eu" (origin book)
GROUP = "gapwatch-monitor"
INSTANCE = "monitor-host-1/4242"
OTHER = "monitor-host-2/4242"  # another instance of the group, whose gaps come from the log
PRODUCERS = 4
RECORDS_PER_GAP = 8  # records read between two missing ones of a partition
START = 1_780_000_000.0
HUGE = 10**9  # limits and retentions that keep everything

Feed = Callable[[Sequence[Event], float], None]


@dataclass(slots=True)
class Holders:
    """What one measurement keeps alive (so nothing is freed before it is measured)."""

    kept: list[object]
    feeds: list[Feed]


def make_trackers(partitions: int, *, keeps_gaps: bool) -> list[PartitionTracker]:
    """One tracker per partition; unless ``keeps_gaps``, each keeps two gaps (one
    watched, one closed: the baseline; 0 closed would mean no limit), else the defaults
    (every gap of this workload)."""
    config = (
        TrackerConfig(grace_period=0.0)
        if keeps_gaps
        else TrackerConfig(grace_period=0.0, max_tracked_gaps=1, max_closed_gaps=1)
    )
    return [PartitionTracker(TOPIC, p, config=config) for p in range(partitions)]


def workload(trackers: list[PartitionTracker], gaps: int) -> Iterator[tuple[list[Event], float]]:
    """Event batches until ``gaps`` gaps are confirmed, with their ``now``: records that
    open a gap, then the read position that confirms it, as two batches (in the monitor
    the gap log brings a change back long before the gap's next change)."""
    partitions = len(trackers)
    # Producer ids as loadgen makes them: one string per producer, shared by its records.
    producers = [f"loadgen-5f1c9e2a-{k}" for k in range(PRODUCERS)]
    seqs = [[0] * PRODUCERS for _ in range(partitions)]
    offsets = [5_000_000_000 + p for p in range(partitions)]
    now = START
    confirmed = 0
    step = 0
    while confirmed < gaps:
        p = step % partitions
        k = (step // partitions) % PRODUCERS
        step += 1
        tracker = trackers[p]
        batch: list[Event] = []
        for _ in range(RECORDS_PER_GAP):
            stamp = Stamp(producers[k], 1, seqs[p][k])
            batch.extend(tracker.observe(offsets[p], int(now * 1000), stamp, now))
            seqs[p][k] += 1
            offsets[p] += 1
        seqs[p][k] += 1  # one record never arrives: the next one opens a gap
        yield batch, now
        now += 0.001
        batch = list(
            tracker.note_read_position(
                read_offset=offsets[p], high_watermark=offsets[p], observed_at=now
            )
        )
        now += 0.001
        batch.extend(tracker.tick(now))
        confirmed += sum(isinstance(e, GapConfirmed) for e in batch)
        yield batch, now


def gap_log_round_trip(
    fleet: FleetStore | None, hub: EventHub | None, strings: StringTable, *, instance: str
) -> Feed:
    """The changes of ``instance`` written to the gap log and read back, as the reader
    applies them (to the fleet view, then the ``/events`` buffer)."""
    offset = 0

    def feed(events: Sequence[Event], now: float) -> None:
        nonlocal offset
        for change in changes_from_events(events, group=GROUP, instance=instance, now=now):
            decoded = decode_change(encode_change(change), strings=strings)
            kept = fleet.settle(decoded) if fleet is not None else decoded
            if hub is not None:
                hub.publish(offset, kept)
            offset += 1

    return feed


def encode_gaps(encoder: GapEncoder, events: Sequence[Event]) -> None:
    """What ``/gaps`` polled after every batch caches: each confirmed gap encoded."""
    for event in events:
        if isinstance(event, GapConfirmed):
            encoder.encode(event.gap, INSTANCE)


def decide_origins(origins: OriginBook, events: Sequence[Event]) -> None:
    """What the mirror attributor leaves in the origin book: a decision per confirmed
    gap, with the detail line it writes, and the fields ``/gaps`` asked for."""
    for event in events:
        if isinstance(event, GapConfirmed):
            gap = event.gap
            detail = (
                f"all {gap.count} missing records are in eu/orders[{gap.partition}] at "
                f"offsets {gap.first_seq + 1000}..{gap.last_seq + 1000}"
            )
            origins.decide(gap.id, Attribution(Origin.MIRROR, Reason.IN_SOURCE, detail, gap.count))
            origins.fields_of(gap)


def holders(name: str) -> Holders:
    """The holder(s) of one measurement, fed as the monitor feeds them."""
    store = GapStore(closed_retention=HUGE, closed_limit=HUGE)
    fleet = FleetStore(group=GROUP, retention=HUGE, limit=HUGE)
    own = FleetFeed(fleet, group=GROUP, instance=INSTANCE)
    hub = EventHub(capacity=HUGE)
    strings = StringTable()
    book = AlertBook(AlertPolicy(loss_hold=HUGE))
    if name == "gap store":
        return Holders([store], [store.handle])
    if name == "fleet view (own events)":
        return Holders([fleet], [own.handle])
    if name == "fleet view (own + gap log)":
        read_back = gap_log_round_trip(fleet, None, strings, instance=INSTANCE)
        return Holders([fleet, strings], [own.handle, read_back])
    if name == "fleet view (another instance's)":
        return Holders([fleet, strings], [gap_log_round_trip(fleet, None, strings, instance=OTHER)])
    if name == "/events buffer":
        return Holders([hub, strings], [gap_log_round_trip(None, hub, strings, instance=OTHER)])
    if name == "alert book":
        return Holders([book], [book.apply])
    if name == "origin book (mirrored)":
        origins = OriginBook(aliases=("eu",), policy="default", limit=HUGE)
        return Holders([origins], [lambda events, now: decide_origins(origins, events)])
    if name == "/gaps encoder cache":
        encoder = GapEncoder(capacity=HUGE)
        return Holders([encoder], [lambda events, now: encode_gaps(encoder, events)])
    if name == "together":
        return Holders(
            [store, fleet, hub, strings],
            [store.handle, own.handle, gap_log_round_trip(fleet, hub, strings, instance=INSTANCE)],
        )
    assert name in ("nothing", "tracker (watched + history)"), name
    return Holders([], [])


NAMES = (
    "tracker (watched + history)",
    "gap store",
    "fleet view (own events)",
    "fleet view (own + gap log)",
    "fleet view (another instance's)",
    "/events buffer",
    "alert book",
    "origin book (mirrored)",
    "/gaps encoder cache",
    "together",
)


def traced(name: str, args: argparse.Namespace) -> int:
    """Traced bytes after feeding the workload to holder ``name`` (``nothing``: none)."""
    gc.collect()
    tracemalloc.start()
    try:
        kept = holders(name)
        keeps_gaps = name in ("tracker (watched + history)", "together")
        trackers = make_trackers(args.partitions, keeps_gaps=keeps_gaps)
        for events, now in workload(trackers, args.gaps):
            for feed in kept.feeds:
                feed(events, now)
        gc.collect()
        return tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gaps", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=24)
    args = parser.parse_args()
    base = traced("nothing", args)
    print(
        f"{args.gaps:,} confirmed gaps over {args.partitions} partitions, "
        f"{PRODUCERS} producers each"
    )
    print(f"{'holder':32} {'bytes per gap':>14} {'MB per 100,000 gaps':>20}")
    for name in NAMES:
        per_gap = (traced(name, args) - base) / args.gaps
        print(f"{name:32} {per_gap:14.0f} {per_gap * 100_000 / 1e6:20.1f}")


if __name__ == "__main__":
    main()
