"""A lean renderer of Prometheus text format 0.0.4 for gapwatch's own metric families.

prometheus-client renders about 27 µs per series (a ``Sample`` namedtuple, a label dict,
sorting and escaping per sample); a monitor owning a few hundred partitions exports
thousands of series, and that cost landed in every scrape. Here a family is plain data
(:class:`ScalarFamily`, :class:`HistogramFamily`), the label block of a label-value tuple
is escaped once and shared by every family, and lines are joined in one pass: about 1 µs
per series. With a :class:`LineCache` a line whose value did not change since the previous
scrape is reused as it was (about 0.3 µs per series).

The output is what ``prometheus_client.generate_latest`` writes for the same families
(the unit tests parse both and compare): ``# HELP`` with ``\\`` and newline escaped,
``# TYPE``, counters named ``<name>_total``, label pairs sorted by name with ``\\``,
``"`` and newline escaped in values, histograms as ``_bucket{le=...}``, ``_count``,
``_sum``, and values formatted as prometheus-client does (:func:`format_value`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator, Sequence
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest

from gapwatch.gaps.metrics import Family, HistogramFamily, LabelValues, ScalarFamily
from gapwatch.monitor.metrics.collector import MonitorCollector, rendered_separately

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

# Beyond this many lines a family is split into several chunks, so a caller that yields to
# its event loop between chunks never holds it for long (about 0.1-0.3 ms per chunk).
DEFAULT_CHUNK_LINES: Final = 500


def format_value(value: float) -> str:
    """A sample value as prometheus-client writes it (Go's float formatting).

    ``repr`` of the float, except ``+Inf``/``-Inf``/``NaN``, and positive values with more
    than six integer digits switch to an exponent (``1.234567e+06``) as Go does.
    """
    if type(value) is int and -1_000_000 < value < 1_000_000:
        return f"{value}.0"  # the common case, a small counter: repr(float(n)) is "n.0"
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    text = repr(number)
    point = text.find(".")
    if number > 0 and point > 6:
        digits = text[:point] + text[point + 1 :]
        mantissa = f"{digits[0]}.{digits[1:]}".rstrip("0").rstrip(".")
        return f"{mantissa}e+{point - 1:02d}"
    return text


def escape_label_value(value: str) -> str:
    """A label value inside double quotes: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    """A HELP text: backslash and newline escaped (quotes are legal there)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def label_block(names: Sequence[str], values: Sequence[str]) -> str:
    """``{a="x",b="y"}`` with pairs sorted by name (as prometheus-client sorts), or ``""``."""
    if not names:
        return ""
    pairs = sorted(zip(names, values, strict=True))
    return "{" + ",".join(f'{n}="{escape_label_value(v)}"' for n, v in pairs) + "}"


class _Blocks:
    """Label blocks, each escaped once and shared by every family (and, in a
    :class:`LineCache`, by every scrape)."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[tuple[tuple[str, ...], LabelValues], str] = {}

    def get(self, names: tuple[str, ...], values: LabelValues) -> str:
        key = (names, values)
        block = self._cache.get(key)
        if block is None:
            block = self._cache[key] = label_block(names, values)
        return block

    def __len__(self) -> int:
        return len(self._cache)


# What one scrape rendered of one scalar family: its label values, values and lines.
_FamilyLines = tuple[Sequence[LabelValues], Sequence[float], list[str]]


class LineCache:
    """What one scrape rendered, reused by the next one while a value is unchanged.

    Most series of a monitor do not move between two scrapes (idle partitions, counters of
    things that rarely happen), and formatting a line costs more than comparing its value.
    A family's previous lines are reused only if it has the same series in the same order
    (the common case: the same partitions, whose label tuples are the very same objects,
    so the comparison is one pass of identity checks); otherwise it is rendered afresh.
    Each scrape replaces what the previous one kept, so revoked partitions drop out; label
    blocks are kept until there are more than ``max_blocks``.
    Not thread-safe: one cache per page, used on one event loop.
    """

    __slots__ = ("_blocks", "_lines", "max_blocks")

    def __init__(self, max_blocks: int = 100_000) -> None:
        self._blocks = _Blocks()
        self._lines: dict[str, _FamilyLines] = {}
        self.max_blocks = max_blocks

    def blocks(self) -> _Blocks:
        if len(self._blocks) > self.max_blocks:
            self._blocks = _Blocks()
        return self._blocks

    def swap(self, name: str, rendered: _FamilyLines) -> _FamilyLines | None:
        """Keep this scrape's ``rendered`` family ``name``; return the previous scrape's."""
        previous = self._lines.get(name)
        self._lines[name] = rendered
        return previous


def _header(name: str, kind: str, help_text: str) -> str:
    return f"# HELP {name} {escape_help(help_text)}\n# TYPE {name} {kind}\n"


def _scalar_lines(
    family: ScalarFamily, blocks: _Blocks, cache: LineCache | None, chunk_lines: int
) -> Iterator[list[str]]:
    name = f"{family.name}_total" if family.kind == "counter" else family.name
    names = family.label_names
    labels, values = family.label_values, family.values
    rendered: list[str] = []
    previous = cache.swap(name, (labels, values, rendered)) if cache is not None else None
    # Same series in the same order: line i may be reused if value i did not change.
    reuse = (
        previous is not None
        and len(previous[2]) == len(previous[0]) == len(labels)  # that render had finished
        and previous[0] == labels
    )
    old_values, old_lines = (previous[1], previous[2]) if previous is not None else ((), [])
    header = _header(name, family.kind, family.help)
    for start in range(0, max(len(values), 1), chunk_lines):
        lines: list[str] = []
        for i in range(start, min(start + chunk_lines, len(values))):
            value = values[i]
            if reuse:
                old = old_values[i]
                # Same type too: an int and a float can be equal and still print differently.
                if old == value and type(old) is type(value):
                    lines.append(old_lines[i])
                    continue
            lines.append(f"{name}{blocks.get(names, labels[i])} {format_value(value)}\n")
        rendered.extend(lines)
        if start == 0:
            lines.insert(0, header)
        yield lines


def _histogram_lines(
    family: HistogramFamily, blocks: _Blocks, chunk_lines: int
) -> Iterator[list[str]]:
    name = family.name
    names = family.label_names
    bucket_names = (*names, "le")
    lines = [_header(name, "histogram", family.help)]
    for values, buckets, total in family.samples:
        for bound, count in buckets:
            block = blocks.get(bucket_names, (*values, bound))
            lines.append(f"{name}_bucket{block} {format_value(count)}\n")
        block = blocks.get(names, values)
        # _count is the +Inf bucket, as prometheus-client's HistogramMetricFamily has it.
        lines.append(f"{name}_count{block} {format_value(buckets[-1][1])}\n")
        lines.append(f"{name}_sum{block} {format_value(total)}\n")
        if len(lines) >= chunk_lines:
            yield lines
            lines = []
    yield lines


def render_chunks(
    families: Sequence[Family],
    cache: LineCache | None = None,
    *,
    chunk_lines: int = DEFAULT_CHUNK_LINES,
) -> Iterator[str]:
    """The text of ``families``, one piece per family (longer ones split every
    ``chunk_lines`` lines).

    A generator, so the caller decides where rendering may pause (the monitor yields to
    its event loop between pieces); concatenated, the pieces are the whole exposition.
    With a ``cache``, unchanged lines of the previous call are reused.
    """
    blocks = cache.blocks() if cache is not None else _Blocks()
    for family in families:
        if isinstance(family, ScalarFamily):
            pieces = _scalar_lines(family, blocks, cache, chunk_lines)
        else:
            pieces = _histogram_lines(family, blocks, chunk_lines)
        for lines in pieces:
            if lines:
                yield "".join(lines)


def render(families: Sequence[Family], cache: LineCache | None = None) -> str:
    """The whole text of ``families`` at once."""
    return "".join(render_chunks(families, cache))


class MetricsPage:
    """Renders ``/metrics`` for one monitor (``collector``) and its ``registry``.

    This is the body of ``GET /metrics``: gapwatch's families rendered lean, then the
    registry's rest.

    A scrape must not stall consumption, which runs on the same event loop. So:

    1. the values are read on the loop in one pass (:meth:`MonitorCollector.read`: a tuple per
       series, about 1 ms for 5,000 series), so they are consistent with each other: no record
       is processed meanwhile. It is a step of its own (the loop runs other work first);
    2. the text is rendered on the loop one family at a time (pieces of at most 500 lines,
       :func:`render_chunks`), yielding to the loop between
       pieces, and lines whose value did not change since the last scrape are reused from a
       :class:`LineCache`. Not in a thread: rendering is
       GIL-bound, and a thread holding the GIL makes the loop wait up to the interpreter's
       switch interval (5 ms) at every hand-over;
    3. the rest of the registry (process, GC, platform collectors, anything an embedding
       application registered) is rendered by ``generate_latest`` in a worker thread, with
       the monitor's own collector muted there so nothing appears twice. That part is small,
       and it may hold third-party collectors that block.
    """

    def __init__(
        self, *, registry: CollectorRegistry, collector: MonitorCollector | None = None
    ) -> None:
        self._registry = registry
        self._collector = collector
        self._lines = LineCache()

    async def render(self) -> bytes:
        """The whole exposition text (Prometheus text format 0.0.4), UTF-8."""
        pieces: list[str] = []
        if self._collector is not None:
            await asyncio.sleep(0)  # the request's parsing and routing was one step already
            for piece in render_chunks(self._collector.read(), self._lines):
                pieces.append(piece)
                await asyncio.sleep(0)
        own = "".join(pieces).encode("utf-8")
        return own + await asyncio.to_thread(self._render_registry)

    def _render_registry(self) -> bytes:
        if self._collector is None:
            return generate_latest(self._registry)
        with rendered_separately(self._collector):
            return generate_latest(self._registry)
