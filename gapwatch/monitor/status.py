"""What a running monitor says about itself on ``/streams``, ``/readyz`` and ``/healthz``.

:class:`MonitorStatus` is the :class:`~gapwatch.monitor.http.MonitorView` the HTTP app
asks; the composition root builds it from the parts it wired, so the answers read live
state without the HTTP layer knowing those parts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gapwatch.monitor.consumer import MonitorConsumer
from gapwatch.monitor.partitions import OwnedPartitions


class MonitorStatus:
    """Streams, readiness and health of one running monitor."""

    def __init__(
        self,
        *,
        instance: str,
        group_id: str,
        partitions: OwnedPartitions,
        consumer: MonitorConsumer,
        consumer_task: Callable[[], asyncio.Task[None] | None],
    ) -> None:
        self._instance = instance
        self._group_id = group_id
        self._partitions = partitions
        self._consumer = consumer
        # A callable: the consumer task exists only once the monitor has started.
        self._consumer_task = consumer_task

    def streams_json(self) -> dict[str, Any]:
        """This instance, its group and a summary of every partition it owns."""
        return {
            "instance": self._instance,
            "group_id": self._group_id,
            "partitions": [state.summary_json() for state in self._partitions],
        }

    def readiness(self) -> tuple[bool, str]:
        """Ready once the group assigned partitions and none is still being restored."""
        consumer = self._consumer
        if not consumer.is_assigned_once:
            return False, "waiting for the group to assign partitions"
        if consumer.restoring:
            names = ", ".join(f"{t}/{p}" for t, p in sorted(consumer.restoring))
            return False, f"restoring {names}"
        return True, f"{len(self._partitions)} partitions"

    def health(self) -> tuple[bool, str]:
        """Healthy while the consumer loop has not ended."""
        task = self._consumer_task()
        if task is not None and task.done():
            return False, "the consumer loop has stopped"
        return True, ""
