"""Prometheus metrics of the verifier: the monitor's names, plus a ``group`` label.

Computed at scrape time from the trackers' own counters (a custom collector, as the
monitor does), so marking a record processed never touches Prometheus and every
(group, topic, partition) series exists at 0 from the moment the partition is taken.
Names and meanings are the monitor's (``docs/metrics.md``) read with "processed" for
"read": ``gapwatch_records_total`` counts records marked processed,
``gapwatch_duplicate_records_total`` records processed again, and
``gapwatch_missing_records_total`` records confirmed never processed. The verifier's
own facts are ``gapwatch_verifier_*`` (``docs/verifier.md``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from gapwatch.gaps.metrics import (
    PARTITION_COUNTERS,
    PARTITION_GAUGES,
    Family,
    ScalarFamily,
    ScalarKind,
    to_metric,
)
from gapwatch.verifier.ledger import ProcessedLedger

LABELS = ("group", "topic", "partition")
_TABLES: tuple[tuple[tuple[tuple[str, str, str], ...], ScalarKind], ...] = (
    (PARTITION_COUNTERS, "counter"),
    (PARTITION_GAUGES, "gauge"),
)


@dataclass(slots=True)
class VerifierHealth:
    """The verifier's own counts, kept by its adapter."""

    checkpoints: int = 0
    checkpoint_failures: int = 0
    restores: int = 0
    restore_failures: int = 0
    tick_failures: int = 0
    subscriber_failures: int = 0


class VerifierCollector(Collector):
    """Every verifier metric of one group, read from the ledger and health on each scrape."""

    def __init__(self, group: str, ledger: ProcessedLedger, health: VerifierHealth) -> None:
        self._group = group
        self._ledger = ledger
        self._health = health

    def describe(self) -> Iterable[Metric]:
        """Nothing: the registry must not call collect() at registration time."""
        return ()

    def collect(self) -> Iterator[Metric]:
        """All families as prometheus-client objects."""
        for family in self.read():
            yield to_metric(family)

    def read(self) -> list[Family]:
        """All families, computed from the current counters (cheap: a tuple per series)."""
        group = self._group
        rows = [((group, p.topic, str(p.partition)), p) for p in self._ledger]
        families: list[Family] = [
            ScalarFamily.from_samples(
                name,
                kind,
                help_text,
                LABELS,
                [(labels, getattr(part.counters, attribute)) for labels, part in rows],
            )
            for table, kind in _TABLES
            for name, help_text, attribute in table
        ]
        families.append(
            ScalarFamily.from_samples(
                "gapwatch_verifier_unprocessed_records",
                "gauge",
                "Records handed to the application and not yet marked processed.",
                LABELS,
                [(labels, part.unprocessed) for labels, part in rows],
            )
        )
        families.append(
            ScalarFamily.from_samples(
                "gapwatch_verifier_partitions",
                "gauge",
                "Partitions of the group this verifier holds.",
                ("group",),
                [((group,), len(rows))],
            )
        )
        health = self._health
        for name, help_text, value in (
            ("gapwatch_verifier_checkpoints", "Partition checkpoints written.", health.checkpoints),
            (
                "gapwatch_verifier_checkpoint_failures",
                "Checkpoint writes that failed (the previous checkpoint stays current).",
                health.checkpoint_failures,
            ),
            (
                "gapwatch_verifier_restores",
                "Partitions restored from a checkpoint.",
                health.restores,
            ),
            (
                "gapwatch_verifier_restore_failures",
                "Partitions started fresh because their checkpoint was unreadable.",
                health.restore_failures,
            ),
            (
                "gapwatch_verifier_tick_failures",
                "Background rounds (positions, confirmations) that failed.",
                health.tick_failures,
            ),
            (
                "gapwatch_verifier_subscriber_failures",
                "Exceptions raised by an event subscriber (sink).",
                health.subscriber_failures,
            ),
        ):
            families.append(
                ScalarFamily.from_samples(
                    name, "counter", help_text, ("group",), [((group,), value)]
                )
            )
        return families
