"""``gapwatch audit --durability``: read the topics' settings once, print the findings.

Metadata and configs only (no record is read): the same reader and rules as the monitor's
durability audit, without producer facts (those come from producer reports, which only the
monitor follows). Plain text for terminals, or the JSON of ``GET /topics``' topics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from gapwatch.core.durability import TopicAudit, audit
from gapwatch.kafka.topic_facts import TopicFactsReader


async def audit_topics(
    *, client_kwargs: Mapping[str, Any], principal: str, topics: Sequence[str], deadline_s: float
) -> list[TopicAudit]:
    """Read ``topics``' settings and placement and audit each, within ``deadline_s`` seconds."""
    reader = TopicFactsReader(client_kwargs, principal=principal)
    async with asyncio.timeout(deadline_s):
        await reader.start()
        try:
            facts = await reader.read(topics)
        finally:
            await reader.close()
    return [audit(facts[name]) for name in sorted(facts)]


def render_audits(audits: Sequence[TopicAudit]) -> str:
    """One line per topic's settings and per finding, then each finding's reason and fix."""
    rows = [("TOPIC", "RF", "MIN_ISR", "UNCLEAN", "FINDING", "DETAIL")]
    for topic_audit in audits:
        s = topic_audit.settings
        settings = (
            s.topic,
            str(s.replication_factor),
            str(s.min_insync_replicas),
            "true" if s.unclean_leader_election else "false",
        )
        if not topic_audit.findings:
            rows.append((*settings, "-", "no findings"))
        for i, finding in enumerate(topic_audit.findings):
            shown = settings if i == 0 else ("", "", "", "")
            rows.append((*shown, finding.name, finding.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        + "  "
        + row[-1]
        for row in rows
    ]
    explained: dict[str, tuple[str, str]] = {}
    for topic_audit in audits:
        for finding in topic_audit.findings:
            explained.setdefault(finding.name, (finding.reason, finding.fix))
    for name, (reason, fix) in explained.items():
        lines += ["", f"{name}: {reason}", f"  fix: {fix}"]
    return "\n".join(lines)


def summarize_audits(audits: Sequence[TopicAudit]) -> str:
    """One line: how many topics were audited and how many findings hold."""
    count = sum(len(a.findings) for a in audits)
    if not count:
        return f"{len(audits)} topic(s) audited: no findings"
    return f"{len(audits)} topic(s) audited: {count} finding(s)"
