"""The gap records of one partition and every change of their state.

The tracker decides *that* a gap opens, shrinks, splits, heals, is confirmed or recovers;
this module does the bookkeeping, and is the only writer of it: each gap's frozen
:class:`Gap` record (built by one factory, :meth:`GapBook.new_gap`), the stream whose
ranges belong to it, the ``open`` set the confirmation rule walks, the gaps that were open
at a skip (R16), a bounded history of closed gaps, and the gap counters (``open_gaps``,
``missing``, ``gaps_confirmed``, ``gaps_unknown``, ``gaps_forgotten``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import replace

from gapwatch.core.counters import TrackerCounters
from gapwatch.core.model import Gap, GapCause, GapState, StreamKey, gap_id
from gapwatch.core.stream import Range, Stream, insert_range, remove_gap_ranges, take_seq


class GapBook:
    """Active gaps (open, or confirmed/truncated and watched for late arrivals) and history.

    ``active``, ``owner`` and ``open`` are public for reading; only this class writes them.
    """

    __slots__ = (
        "_closed",
        "_counters",
        "_max_closed",
        "_max_tracked",
        "_open_at_skip",
        "active",
        "open",
        "owner",
    )

    def __init__(self, counters: TrackerCounters, *, max_tracked: int, max_closed: int) -> None:
        self._counters = counters
        self._max_tracked = max_tracked
        self._max_closed = max_closed
        self.active: dict[str, Gap] = {}
        # The stream whose ranges belong to each active gap (None: nothing left to watch).
        self.owner: dict[str, Stream | None] = {}
        # Insertion-ordered set of open gap ids: the confirmation rule walks only these.
        self.open: dict[str, None] = {}
        self._closed: deque[Gap] = deque(maxlen=max_closed or None)
        # Ids of gaps that were open when retention deleted unread offsets: they end
        # ``unknown`` instead of confirmed (R16).
        self._open_at_skip: set[str] = set()

    # --- queries ---------------------------------------------------------------------

    def get(self, gid: str) -> Gap | None:
        """The gap with id ``gid``, active or in the closed history."""
        gap = self.active.get(gid)
        if gap is not None:
            return gap
        for closed in reversed(self._closed):
            if closed.id == gid:
                return closed
        return None

    def all(self) -> Iterator[Gap]:
        """Active gaps, then the closed history (oldest first)."""
        yield from self.active.values()
        yield from self._closed

    def closed(self) -> list[Gap]:
        """The closed history, oldest first."""
        return list(self._closed)

    # --- creation --------------------------------------------------------------------

    def new_id(self, key: StreamKey, first: int, generation: int, cause: GapCause) -> str:
        """The stable id for a new gap; a suffix only if the same id is still active."""
        base = gap_id(key, first, generation=generation, cause=cause)
        gid, n = base, 1
        while gid in self.active:
            n += 1
            gid = f"{base}-{n}"
        return gid

    def new_gap(
        self,
        key: StreamKey,
        first: int,
        last: int,
        *,
        state: GapState,
        cause: GapCause,
        opened_at: float,
        now: float,
        generation: int = 0,
        offset_before: int | None = None,
        offset_after: int | None = None,
        timestamp_before_ms: int | None = None,
        timestamp_after_ms: int | None = None,
        producer_told: bool = False,
    ) -> Gap:
        """The record of a new gap of ``key`` over ``first..last``, with its stable id
        (not registered yet: :meth:`add` does that)."""
        return Gap(
            id=self.new_id(key, first, generation, cause),
            topic=key.topic,
            partition=key.partition,
            producer=key.producer,
            epoch=key.epoch,
            first_seq=first,
            last_seq=last,
            count=last - first + 1,
            state=state,
            cause=cause,
            opened_at=opened_at,
            updated_at=now,
            confirmed_at=now if state is GapState.CONFIRMED else None,
            offset_before=offset_before,
            offset_after=offset_after,
            timestamp_before_ms=timestamp_before_ms,
            timestamp_after_ms=timestamp_after_ms,
            producer_told=producer_told,
            generation=generation,
        )

    def add(self, gap: Gap, stream: Stream | None, *, watch: bool = True) -> None:
        """Register a new gap; with ``watch`` its range is added to ``stream``."""
        if watch and stream is not None:
            insert_range(stream.ensure_aux().ranges, Range(gap.first_seq, gap.last_seq, gap.id))
            self.active[gap.id] = gap
            self.owner[gap.id] = stream
        elif gap.state is GapState.OPEN:
            self.active[gap.id] = gap
            self.owner[gap.id] = None
        else:
            self._closed.append(gap)
        if gap.state is GapState.OPEN:
            self.open[gap.id] = None
            self._counters.open_gaps += 1
        elif gap.state is GapState.CONFIRMED:
            self._counters.missing += gap.count
            self._counters.gaps_confirmed += 1
        self._bound()

    def restore(self, gap: Gap, stream: Stream | None) -> None:
        """Re-register an active gap from a snapshot (ranges are restored by the stream)."""
        self.active[gap.id] = gap
        self.owner[gap.id] = stream
        if gap.state is GapState.OPEN:
            self.open[gap.id] = None

    def restore_closed(self, gap: Gap) -> None:
        """Re-add a closed gap to the history from a snapshot."""
        self._closed.append(gap)

    def restore_open_at_skip(self, gap_ids: set[str]) -> None:
        """Re-mark the gaps that were open at a skip, from a snapshot."""
        self._open_at_skip = gap_ids

    def open_at_skip(self) -> list[str]:
        """Ids of gaps marked open at a skip, sorted (for a snapshot)."""
        return sorted(self._open_at_skip)

    # --- R16: gaps open at a skip ----------------------------------------------------

    def mark_open_at_skip(self) -> None:
        """Retention deleted unread offsets: every gap open now may have lost its late
        records among them."""
        self._open_at_skip.update(self.open)

    def was_open_at_skip(self, gid: str) -> bool:
        """Whether gap ``gid`` was open at a skip."""
        return gid in self._open_at_skip

    def unmark_closed(self) -> None:
        """Stop remembering skip marks of gaps no longer open."""
        if self._open_at_skip:
            self._open_at_skip &= self.open.keys()

    def close_unknown(self, gap: Gap, now: float) -> Gap:
        """R11 held for a gap open at a skip: it ends ``unknown``, not lost."""
        self._open_at_skip.discard(gap.id)
        done = replace(gap, state=GapState.UNKNOWN, updated_at=now)
        st = self.owner.get(gap.id)
        if st is not None and st.aux is not None:
            remove_gap_ranges(st.aux.ranges, gap.id)
            st.drop_aux_if_empty()
        self.close(done)
        self._counters.gaps_unknown += 1
        return done

    # --- transitions -----------------------------------------------------------------

    def update(self, gap: Gap) -> None:
        """Replace an active gap's record (same id)."""
        self.active[gap.id] = gap

    def close(self, gap: Gap) -> None:
        """Move a gap out of the active set into the history (its ranges must be gone)."""
        gid = gap.id
        del self.active[gid]
        self.owner.pop(gid, None)
        if self.open.pop(gid, 0) is None:
            self._counters.open_gaps -= 1
        self._closed.append(gap)

    def split(
        self, stream: Stream, k: int, seq: int, offset: int, ts: int, now: float, gap: Gap
    ) -> tuple[Gap, Gap]:
        """R6: the late record ``seq`` (at ``offset``, timestamp ``ts``) is in the middle
        of the open ``gap``, whose range is ``stream``'s range ``k``: the gap becomes two,
        the right one with the id of its own first sequence and the record as its bound."""
        aux = stream.aux
        assert aux is not None  # the caller found a range
        right = take_seq(aux.ranges, k, seq)
        assert right is not None  # a middle sequence always splits
        left = replace(
            gap,
            last_seq=seq - 1,
            count=seq - gap.first_seq,
            offset_after=offset,
            timestamp_after_ms=ts,
            updated_at=now,
        )
        right_gap = replace(
            gap,
            id=self.new_id(gap.key, seq + 1, gap.generation, gap.cause),
            first_seq=seq + 1,
            count=gap.last_seq - seq,
            offset_before=offset,
            timestamp_before_ms=ts,
            updated_at=now,
        )
        self.update(left)
        # The split-off range already sits in the stream; re-point it at its own gap.
        right.gap_id = right_gap.id
        self.active[right_gap.id] = right_gap
        self.owner[right_gap.id] = stream
        self.open[right_gap.id] = None
        self._counters.open_gaps += 1
        if gap.id in self._open_at_skip:
            self._open_at_skip.add(right_gap.id)  # both pieces were open at the skip
        return left, right_gap

    def confirm(self, gap: Gap, now: float) -> Gap:
        """Open → confirmed: the loss is counted once, here."""
        confirmed = replace(gap, state=GapState.CONFIRMED, confirmed_at=now, updated_at=now)
        del self.open[gap.id]
        self._counters.open_gaps -= 1
        self._counters.missing += gap.count
        self._counters.gaps_confirmed += 1
        if self.owner.get(gap.id) is None:
            # Nothing can arrive for it any more (its stream was reset or evicted).
            del self.active[gap.id]
            self.owner.pop(gap.id, None)
            self._closed.append(confirmed)
        else:
            self.active[gap.id] = confirmed
        return confirmed

    def divide(self, gap: Gap, pieces: list[Gap], stream: Stream) -> None:
        """Replace the active ``gap`` by adjacent ``pieces`` covering its sequences.

        The first piece keeps ``gap``'s id; the stream's missing ranges are cut at the
        pieces' boundaries. A piece with nothing left missing (every record of it came back,
        R7) goes to the history, in the state the caller gave it. Counters stay exact: every
        extra piece of an open gap is one more open gap, of a confirmed gap one more
        confirmed gap; ``missing`` is unchanged (the counts add up to the original's).
        """
        aux = stream.ensure_aux()
        old = [r for r in aux.ranges if r.gap_id == gap.id]
        ranges = [r for r in aux.ranges if r.gap_id != gap.id]
        watched: set[str] = set()
        for piece in pieces:
            for r in old:
                lo, hi = max(r.first, piece.first_seq), min(r.last, piece.last_seq)
                if lo <= hi:
                    ranges.append(Range(lo, hi, piece.id))
                    watched.add(piece.id)
        ranges.sort(key=_range_first)
        aux.ranges[:] = ranges
        extra = len(pieces) - 1
        if gap.state is GapState.OPEN:
            self._counters.open_gaps += extra
        elif gap.state is GapState.CONFIRMED:
            self._counters.gaps_confirmed += extra
        for i, piece in enumerate(pieces):
            is_closed = piece.id not in watched
            if i == 0 and is_closed:
                self.close(piece)
            elif i == 0:
                self.active[piece.id] = piece
            elif is_closed:
                self._closed.append(piece)
            else:
                self.active[piece.id] = piece
                self.owner[piece.id] = stream
                if piece.state is GapState.OPEN:
                    self.open[piece.id] = None
        if gap.id in self._open_at_skip:
            self._open_at_skip.update(p.id for p in pieces)  # every piece was open at it
        self._bound()

    def join(self, left: Gap, right: Gap, stream: Stream, now: float) -> Gap:
        """Make the adjacent open gaps ``left`` and ``right`` of ``stream`` one gap with
        ``left``'s id (the inverse of a cut at a failed range's boundary). Open gaps own
        exactly one range each, so the left range grows over the right one."""
        assert left.state is GapState.OPEN
        assert right.state is GapState.OPEN
        assert left.last_seq + 1 == right.first_seq
        aux = stream.aux
        assert aux is not None
        left_range = next(r for r in aux.ranges if r.gap_id == left.id)
        right_range = next(r for r in aux.ranges if r.gap_id == right.id)
        left_range.last = right_range.last
        aux.ranges.remove(right_range)
        joined = replace(
            left,
            last_seq=right.last_seq,
            count=left.count + right.count,
            offset_after=right.offset_after,
            timestamp_after_ms=right.timestamp_after_ms,
            updated_at=max(now, left.updated_at, right.updated_at),
        )
        self.active[left.id] = joined
        del self.active[right.id]
        self.owner.pop(right.id, None)
        del self.open[right.id]
        self._counters.open_gaps -= 1
        if right.id in self._open_at_skip:
            self._open_at_skip.discard(right.id)
            self._open_at_skip.add(left.id)  # the joined gap was open at the skip too
        return joined

    def detach_stream(self, stream: Stream) -> None:
        """A stream is dropped: close its watched gaps, keep its open ones open unwatched."""
        aux = stream.aux
        if aux is None:
            return
        for gid in {r.gap_id for r in aux.ranges}:
            gap = self.active.get(gid)
            if gap is None:
                continue
            if gap.state is GapState.OPEN:
                self.owner[gid] = None
            else:
                self.close(gap)
        aux.ranges.clear()

    def _bound(self) -> None:
        excess = len(self.active) - len(self.open) - self._max_tracked
        if excess <= 0:
            return
        for gid in [g for g in self.active if g not in self.open][:excess]:
            gap = self.active[gid]
            stream = self.owner.get(gid)
            if stream is not None and stream.aux is not None:
                remove_gap_ranges(stream.aux.ranges, gid)
                stream.drop_aux_if_empty()
            self.close(gap)
            self._counters.gaps_forgotten += 1


def _range_first(r: Range) -> int:
    return r.first
