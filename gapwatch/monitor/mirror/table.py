"""The mirror's numbers per mirrored partition: missing records by origin, duplicates by
maker, and lag. Written by the attributor and the lag reader, read by the collector.

Counters count what this instance decided itself (gaps it confirmed, duplicates it read),
from 0 when the process starts, like any process counter: a gap confirmed before a restart
or by another instance is attributed for ``/gaps`` but not counted again, so summing the
fleet's series counts each loss once. Lag is a gauge of the partitions this instance owns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from gapwatch.core.mirror_duplicates import DuplicateSplit
from gapwatch.core.origin import Attribution, Origin

# The origin label of gapwatch_mirror_missing_records_total.
MISSING_ORIGINS: Final = ("mirror", "source", "unknown")
# The made_by label of gapwatch_mirror_duplicate_records_total.
DUPLICATE_MAKERS: Final = ("mirror", "source", "unknown")

Key = tuple[str, int, str]  # topic, partition, source cluster


@dataclass(slots=True)
class MirrorRow:
    """One mirrored partition's values."""

    missing: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MISSING_ORIGINS, 0))
    duplicates: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DUPLICATE_MAKERS, 0))
    lag_records: int | None = None
    lag_seconds: float | None = None


@dataclass(slots=True)
class LookupStats:
    """How the source lookups of one source cluster went."""

    decided: int = 0
    failed: int = 0
    retried: int = 0
    dropped: int = 0


class MirrorTable:
    """Rows per (topic, partition, source cluster) and lookup stats per source cluster."""

    __slots__ = ("lag_errors", "lookups", "pending", "rows", "source_up")

    def __init__(self) -> None:
        self.rows: dict[Key, MirrorRow] = {}
        self.lookups: dict[str, LookupStats] = {}
        self.pending = 0
        self.source_up: dict[str, int] = {}  # source cluster -> 1 once its readers connected
        self.lag_errors: dict[str, int] = {}  # source cluster -> lag readings that failed

    def row(self, topic: str, partition: int, source_cluster: str) -> MirrorRow:
        """The row of one mirrored partition, made at 0 on first use."""
        key = (topic, partition, source_cluster)
        found = self.rows.get(key)
        if found is None:
            found = self.rows[key] = MirrorRow()
        return found

    def stats(self, source_cluster: str) -> LookupStats:
        """The lookup counters of one source cluster."""
        found = self.lookups.get(source_cluster)
        if found is None:
            found = self.lookups[source_cluster] = LookupStats()
        return found

    def count_missing(
        self, topic: str, partition: int, source_cluster: str, attribution: Attribution, count: int
    ) -> None:
        """Add a confirmed gap of ``count`` records, split as its attribution says."""
        row = self.row(topic, partition, source_cluster)
        if attribution.origin in (Origin.MIRROR, Origin.SOURCE, Origin.MIXED):
            row.missing["mirror"] += attribution.in_source
            row.missing["source"] += attribution.not_in_source
        else:
            row.missing["unknown"] += count

    def count_duplicates(
        self, topic: str, partition: int, source_cluster: str, split: DuplicateSplit
    ) -> None:
        """Add duplicates read on the target, by maker."""
        row = self.row(topic, partition, source_cluster)
        row.duplicates["mirror"] += split.mirror
        row.duplicates["source"] += split.source
        row.duplicates["unknown"] += split.unknown

    def set_lag(
        self, topic: str, partition: int, source_cluster: str, records: int, seconds: float
    ) -> None:
        """The lag measured last for one partition this instance owns."""
        row = self.row(topic, partition, source_cluster)
        row.lag_records = records
        row.lag_seconds = seconds

    def clear_lag(self, topic: str, partition: int, source_cluster: str) -> None:
        """No lag series for a partition this instance no longer owns."""
        row = self.rows.get((topic, partition, source_cluster))
        if row is not None:
            row.lag_records = row.lag_seconds = None
