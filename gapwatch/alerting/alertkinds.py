"""What each kind of Alertmanager alert says: name, labels, annotations, link. Pure.

Three kinds, one function each, fed from the state the alert book keeps
(:mod:`gapwatch.alerting.alertbook`): a lost gap (``GapwatchGapConfirmed`` or
``GapwatchGapTruncated``), a partition's overflow (``GapwatchGapsOverflow``) and a
duplicate burst (``GapwatchDuplicateBurst``). Labels identify an alert (Alertmanager
deduplicates on them, so they must be the same from any instance on every re-post);
annotations explain it. *When* an alert fires and resolves is the alert book's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

from gapwatch.alerting.alertpolicy import AlertPolicy
from gapwatch.alerting.changes import iso_time
from gapwatch.core.model import Gap, GapState

GAP_CONFIRMED: Final = "GapwatchGapConfirmed"
GAP_TRUNCATED: Final = "GapwatchGapTruncated"
GAPS_OVERFLOW: Final = "GapwatchGapsOverflow"
DUPLICATE_BURST: Final = "GapwatchDuplicateBurst"


@dataclass(frozen=True, slots=True)
class Alert:
    """One Alertmanager alert as posted (``POST /api/v2/alerts`` item)."""

    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...]
    starts_at: float
    ends_at: float
    generator_url: str

    def label(self, name: str) -> str:
        """The value of label ``name`` ("" if absent)."""
        return dict(self.labels).get(name, "")

    def is_firing(self, now: float) -> bool:
        """Whether Alertmanager considers it firing at ``now``."""
        return self.ends_at > now

    def to_json(self) -> dict[str, Any]:
        """The JSON object Alertmanager's API v2 takes."""
        return {
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": iso_time(self.starts_at),
            "endsAt": iso_time(self.ends_at),
            "generatorURL": self.generator_url,
        }


def gap_alert(
    gap: Gap,
    starts_at: float,
    ends_at: float,
    policy: AlertPolicy,
    *,
    mirror: Mapping[str, Any] | None = None,
) -> Alert:
    """The alert of one lost gap: confirmed, or truncated from the log.

    ``mirror``: the gap's mirror fields (:mod:`gapwatch.gaps.origins`); on a mirrored topic
    the annotations then say where the records were lost (labels stay the same, so the
    alert keeps its identity in Alertmanager while the origin is being decided).
    """
    name = GAP_TRUNCATED if gap.state is GapState.TRUNCATED else GAP_CONFIRMED
    url = _url(policy, f"/gaps/{gap.id}")
    what = "truncated from the log" if name == GAP_TRUNCATED else "lost"
    offsets = f"{_text(gap.offset_before)}..{_text(gap.offset_after)}"
    labels = (
        ("alertname", name),
        ("severity", "critical"),
        ("topic", gap.topic),
        ("partition", str(gap.partition)),
        ("producer", gap.producer),
        ("gap_id", gap.id),
    )
    annotations: tuple[tuple[str, str], ...] = (
        ("summary", f"{gap.count} records {what} on {gap.topic}/{gap.partition}"),
        (
            "description",
            f"Producer {gap.producer} (epoch {gap.epoch}) sequences "
            f"{gap.first_seq}..{gap.last_seq} on {gap.topic}/{gap.partition}: "
            f"{gap.count} records {what} (cause: {gap.cause.value}). They sat between "
            f"offsets {offsets}. Producer told: {_yes_no(gap.producer_told)}.",
        ),
        ("count", str(gap.count)),
        ("first_seq", str(gap.first_seq)),
        ("last_seq", str(gap.last_seq)),
        ("sequence_range", f"{gap.first_seq}..{gap.last_seq}"),
        ("epoch", str(gap.epoch)),
        ("offset_before", _text(gap.offset_before)),
        ("offset_after", _text(gap.offset_after)),
        ("producer_told", _yes_no(gap.producer_told)),
        ("cause", gap.cause.value),
        ("state", gap.state.value),
        ("recovered", str(gap.recovered)),
        ("gap_url", url),
        ("monitor", policy.instance),
    )
    if mirror is not None and mirror.get("source_cluster") is not None:
        origin = mirror.get("origin") or "pending"
        reason = mirror.get("origin_reason") or ""
        annotations = (
            *annotations,
            ("origin", str(origin)),
            ("origin_reason", str(reason)),
            ("source_cluster", str(mirror["source_cluster"])),
            ("source_topic", str(mirror["source_topic"])),
        )
        summary = dict(annotations)["summary"]
        annotations = tuple(
            (key, f"{summary}, origin {origin}" if key == "summary" else value)
            for key, value in annotations
        )
    return Alert(labels, annotations, starts_at, ends_at, url)


def overflow_alert(
    topic: str,
    partition: int,
    *,
    gaps: int,
    records: int,
    starts_at: float,
    ends_at: float,
    policy: AlertPolicy,
) -> Alert:
    """The one alert summarising a partition's lost gaps beyond ``max_per_partition``."""
    url = _url(
        policy, "/gaps", topic=topic, partition=str(partition), state=["confirmed", "truncated"]
    )
    limit = policy.max_per_partition
    labels = (
        ("alertname", GAPS_OVERFLOW),
        ("severity", "critical"),
        ("topic", topic),
        ("partition", str(partition)),
    )
    annotations = (
        ("summary", f"{gaps} more lost gaps on {topic}/{partition} ({records} records)"),
        (
            "description",
            f"{topic}/{partition} already has {limit} per-gap loss alerts firing; "
            f"{gaps} further gaps ({records} records) are summarised here instead of "
            "paging one by one. The gap list has every one of them.",
        ),
        ("gaps", str(gaps)),
        ("count", str(records)),
        ("gaps_url", url),
        ("monitor", policy.instance),
    )
    return Alert(labels, annotations, starts_at, ends_at, url)


def burst_alert(
    topic: str,
    partition: int,
    producer: str,
    *,
    epoch: int,
    records: int,
    starts_at: float,
    ends_at: float,
    policy: AlertPolicy,
) -> Alert:
    """The warning for one producer stream writing duplicates on one partition."""
    url = _url(policy, "/gaps", topic=topic, partition=str(partition), producer=producer)
    window = policy.duplicate_window
    labels = (
        ("alertname", DUPLICATE_BURST),
        ("severity", "warning"),
        ("topic", topic),
        ("partition", str(partition)),
        ("producer", producer),
    )
    annotations = (
        ("summary", f"Duplicate records from {producer} on {topic}/{partition}"),
        (
            "description",
            f"Producer {producer} (epoch {epoch}) wrote {records} records "
            f"again on {topic}/{partition} (at least {policy.duplicate_threshold} "
            f"within {window:g}s). Consumers that are not idempotent processed them twice.",
        ),
        ("count", str(records)),
        ("gaps_url", url),
        ("monitor", policy.instance),
    )
    return Alert(labels, annotations, starts_at, ends_at, url)


def _url(policy: AlertPolicy, path: str, **query: str | list[str]) -> str:
    tail = f"?{urlencode(query, doseq=True)}" if query else ""
    return f"{policy.external_url.rstrip('/')}{path}{tail}"


def _text(value: int | None) -> str:
    return "unknown" if value is None else str(value)


def _yes_no(value: bool) -> str:
    return "true" if value else "false"
