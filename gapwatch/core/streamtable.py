"""The streams of one partition: current ones by producer, retired epochs, and the index
of streams whose baseline still matters (R9).

The table decides nothing; the tracker's rules say when a stream starts, retires, is
reset or forgotten, and the table keeps every collection that names a stream consistent,
so forgetting a stream (:meth:`StreamTable.forget`) is written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from gapwatch.core.stream import Stream

# The cap evicts this fraction of max_streams at once, so a flood of new producers costs
# one scan per batch rather than one per record.
_CAP_BATCH_DIVISOR = 64


class StreamTable:
    """Current streams (``current``, by producer: read on the hot path), retired epochs
    (``retired``, by (producer, epoch)), and the streams with a baseline."""

    __slots__ = ("_with_baseline", "current", "retired")

    def __init__(self) -> None:
        self.current: dict[str, Stream] = {}
        self.retired: dict[tuple[str, int], Stream] = {}
        # Streams whose ``baseline`` is set, so a tick walks only those (R9).
        self._with_baseline: dict[Stream, None] = {}

    def __len__(self) -> int:
        return len(self.current) + len(self.retired)

    def __iter__(self) -> Iterator[Stream]:
        """Current streams, then retired epochs."""
        yield from self.current.values()
        yield from self.retired.values()

    # --- lifecycle -------------------------------------------------------------------

    def start(self, st: Stream) -> None:
        """``st`` is its producer's current stream from now on."""
        self.current[st.producer] = st

    def retire(self, old: Stream) -> None:
        """Keep ``old`` as a retired epoch (for its gaps and reports)."""
        self.retired[(old.producer, old.epoch)] = old

    def is_current(self, st: Stream) -> bool:
        """Whether ``st`` is its producer's current stream."""
        return self.current.get(st.producer) is st

    def forget(self, st: Stream) -> None:
        """Drop what the table and the stream keep about ``st`` beyond its progress: its
        baseline and skip mark. Removing it from ``current``/``retired`` is the caller's
        (a reset replaces it, an eviction deletes it)."""
        self.drop_baseline(st)
        st.skip_mark = None

    def evict_idle(self, cutoff: float, is_busy: Callable[[Stream], bool]) -> list[Stream]:
        """Remove and return streams last seen at or before ``cutoff`` that are not busy,
        current streams first."""
        gone: list[Stream] = []
        for producer, st in list(self.current.items()):
            if st.last_seen <= cutoff and not is_busy(st):
                del self.current[producer]
                gone.append(st)
        for key, st in list(self.retired.items()):
            if st.last_seen <= cutoff and not is_busy(st):
                del self.retired[key]
                gone.append(st)
        return gone

    def evict_for_cap(self, max_streams: int) -> list[Stream]:
        """Remove and return streams to make room below ``max_streams``: least recently
        seen first, retired epochs first, a batch at a time."""
        excess = len(self) - max_streams + 1
        batch = max(excess, max_streams // _CAP_BATCH_DIVISOR, 1)
        gone: list[Stream] = []
        retired = sorted(self.retired.items(), key=lambda kv: kv[1].last_seen)
        for key, st in retired[:batch]:
            del self.retired[key]
            gone.append(st)
        batch -= len(gone)
        if batch > 0:
            current = sorted(self.current.items(), key=lambda kv: kv[1].last_seen)
            for producer, st in current[:batch]:
                del self.current[producer]
                gone.append(st)
        return gone

    # --- R9: baselines ---------------------------------------------------------------

    def set_baseline(self, st: Stream, seq: int, now: float) -> None:
        """``st`` was first seen (again) at ``seq`` at ``now``."""
        st.baseline = (seq, now)
        self._with_baseline[st] = None

    def drop_baseline(self, st: Stream) -> None:
        """Forget ``st``'s baseline."""
        if st.baseline is not None:
            st.baseline = None
            self._with_baseline.pop(st, None)

    def has_baselines(self) -> bool:
        """Whether any stream has a baseline (the decision path skips R9 when none has)."""
        return bool(self._with_baseline)

    def with_baseline(self) -> list[Stream]:
        """Streams with a baseline, in the order they got it."""
        return list(self._with_baseline)

    def drop_settled_baselines(self, is_settled: Callable[[float], bool]) -> None:
        """Forget every baseline whose first sight ``is_settled``."""
        keep: dict[Stream, None] = {}
        for st in self._with_baseline:
            baseline = st.baseline
            if baseline is not None and not is_settled(baseline[1]):
                keep[st] = None
            else:
                st.baseline = None
        # Rebuilt rather than deleted from: a dict never gives back its table, and after a
        # monitor starts on a busy topic this one briefly holds every stream.
        self._with_baseline = keep

    # --- R16: skip marks -------------------------------------------------------------

    def mark_skip(self, last_offset: int) -> None:
        """Mark every current stream with a skip ending at ``last_offset``."""
        for st in self.current.values():
            # The mark is the skip's last offset: a stream whose newest record is above it
            # has advanced in order since, and the mark no longer applies.
            st.skip_mark = last_offset
