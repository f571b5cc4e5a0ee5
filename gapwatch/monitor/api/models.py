"""The JSON shapes of the HTTP API, in one place, as typed models for OpenAPI (/docs).

Handlers build responses from the core's own ``to_json()`` dicts and return them directly
(no second validation pass per gap); these models document the same shapes and a unit
test keeps them and ``Gap.to_json()`` in step.
"""

from pydantic import BaseModel, Field


class GapModel(BaseModel):
    """One gap: a run of missing sequences of one producer stream."""

    id: str = Field(description="stable id: same gap, same id, across restarts and instances")
    topic: str
    partition: int
    producer: str
    epoch: int
    generation: int = Field(description="how many times this epoch restarted at sequence 0")
    first_seq: int
    last_seq: int
    count: int = Field(description="missing records (frozen at confirmation)")
    state: str = Field(description="open | confirmed | healed | recovered | truncated | unknown")
    cause: str = Field(description="sequence | head | tail | producer | truncation")
    opened_at: str | None
    updated_at: str | None
    confirmed_at: str | None
    healed_at: str | None
    opened_at_ts: float
    updated_at_ts: float
    offset_before: int | None
    offset_after: int | None
    timestamp_before_ms: int | None
    timestamp_after_ms: int | None
    producer_told: bool = Field(description="the producer reported these sends as failed")
    recovered: int = Field(description="records of a confirmed gap that arrived later")


class OwnedGapModel(GapModel):
    """A gap with the monitor instance that owns its partition (published its state), and
    where it came from when its topic is a mirror copy (docs/mirroring.md)."""

    origin: str | None = Field(
        description="mirrored topics only, for confirmed and recovered gaps: "
        "pending | mirror | source | mixed | unknown (null otherwise)"
    )
    origin_reason: str | None = Field(
        description="the rule or failure behind origin, then a sentence (null with origin)"
    )
    source_cluster: str | None = Field(description="MM2 alias of the source (null: not a copy)")
    source_topic: str | None = Field(description="the topic copied (null: not a copy)")
    instance: str = Field(description="owning monitor instance (host/pid)")


class GapPageModel(BaseModel):
    """A page of gaps, newest first."""

    gaps: list[OwnedGapModel]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")


class SkippedModel(BaseModel):
    """Offsets deleted by retention before the monitor read them: unknown, not loss."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    count: int
    at: float
    instance: str = Field(description="monitor instance that found it")


class SkippedPageModel(BaseModel):
    """Skipped offset ranges, newest first."""

    skipped: list[SkippedModel]


class StreamModel(BaseModel):
    """One tracked producer stream on a partition."""

    producer: str
    epoch: int
    generation: int
    base_seq: int
    high_seq: int
    last_offset: int
    last_timestamp_ms: int
    last_seen: float
    missing: int
    open_gaps: list[str]


class PartitionModel(BaseModel):
    """One partition this instance owns."""

    topic: str
    partition: int
    restored: bool = Field(description="its checkpoint was restored (or none existed)")
    position: int | None = Field(description="next offset to read")
    high_watermark: int | None
    lag: int | None
    leader: int | None = Field(description="broker id of the partition leader last seen")
    leader_changes: int = Field(description="leader changes seen while owned")
    records: int
    streams: list[StreamModel]


class StreamsModel(BaseModel):
    """What this instance tracks."""

    instance: str
    group_id: str
    partitions: list[PartitionModel]


class StatusModel(BaseModel):
    """Health or readiness."""

    status: str
    detail: str = ""


class FieldErrorModel(BaseModel):
    """One parameter the request framework refused (FastAPI's validation error item)."""

    loc: list[str | int] = Field(description="where: e.g. ['query', 'limit']")
    msg: str
    type: str


class ErrorModel(BaseModel):
    """A refused request (401, 404, 422).

    ``detail`` is one sentence when gapwatch itself refused it (a wrong token, an unknown
    gap, a cursor it did not issue), or the list of refused parameters when a parameter
    does not have the documented type or range.
    """

    detail: str | list[FieldErrorModel]


class TopicSettingsModel(BaseModel):
    """A topic's durability settings: effective values, with where each came from."""

    partitions: int
    replication_factor: int = Field(description="the smallest replica count of any partition")
    min_insync_replicas: int
    unclean_leader_election_enable: bool
    smallest_isr: int = Field(description="the fewest in-sync replicas of any partition now")
    config_sources: dict[str, str] = Field(
        description="config -> topic | broker | cluster | broker file | kafka default"
    )


class ProducerWritesModel(BaseModel):
    """How a stamped producer writing to the topic says it writes (its latest report)."""

    producer: str
    acks: str | None = Field(description="0 | 1 | all; null: its reports do not say")
    idempotence: bool | None = Field(description="null: its reports do not say")


class FindingModel(BaseModel):
    """A durability risk that holds for the topic."""

    name: str = Field(
        description="rf_below_3 | min_isr_1 | min_isr_not_below_rf | unclean_election_enabled"
        " | partition_offline | under_min_isr | under_replicated | replicas_share_rack"
        " | producer_acks_not_all | producer_not_idempotent"
    )
    detail: str = Field(description="the facts that make it hold")
    reason: str = Field(description="why it risks losing records, in one sentence")
    fix: str


class TopicAuditModel(BaseModel):
    """One watched topic: settings, its stamped producers and the findings."""

    topic: str
    settings: TopicSettingsModel
    producers: list[ProducerWritesModel]
    findings: list[FindingModel]


class TopicsModel(BaseModel):
    """The durability audit of every watched topic."""

    refresh_interval: float = Field(description="seconds between audits (0: audit off)")
    audited_at: float | None = Field(description="when settings were last read (epoch s)")
    error: str | None = Field(description="why the last read failed, if it did")
    topics: list[TopicAuditModel]
