"""Connecting to the mirrors' source clusters without making the monitor depend on them.

A copy kept for disaster recovery must be watched most when its source is gone, so an
unreachable source never stops the monitor from starting or running: each source's reader
pool connects in the background, retrying with a growing pause (1 s doubling to 30 s), and
says why it failed in one line (as the monitor's own clients do at start) once per
attempt. Until a source first connects its lookups wait (origin ``pending``) and
``gapwatch_mirror_source_up`` is 0; a source lost after that fails lookups after their
retries (``unknown: source-unreachable``, asked again later).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka.errors import KafkaError

from gapwatch.errors import GapwatchError
from gapwatch.kafka.partition_reader import ReaderPool
from gapwatch.kafka.startup_errors import explained_start
from gapwatch.monitor.mirror.table import MirrorTable

log = logging.getLogger(__name__)

_PAUSE_INITIAL = 1.0
_PAUSE_MAX = 30.0


async def keep_connecting(
    alias: str,
    pool: ReaderPool,
    *,
    client_kwargs: Mapping[str, Any],
    table: MirrorTable,
    on_connected: Callable[[], None] = lambda: None,
) -> None:
    """Connect ``pool`` to source ``alias``, retrying until it works (or is cancelled);
    then call ``on_connected`` (the attributor lets the lookups that waited go)."""
    table.source_up[alias] = 0
    pause = _PAUSE_INITIAL
    while True:
        try:
            async with explained_start(client_kwargs):
                await pool.start()
        except (GapwatchError, KafkaError, OSError, TimeoutError) as exc:
            log.warning("mirror source %s not reachable, retrying in %.0f s: %s", alias, pause, exc)
        except Exception:
            # Not a connection problem: logged in full and tried again like one, so the
            # monitor runs on and its log says what went wrong.
            log.exception("connecting to mirror source %s failed, retrying in %.0f s", alias, pause)
        else:
            table.source_up[alias] = 1
            log.info("mirror source %s connected", alias)
            on_connected()
            return
        await asyncio.sleep(pause)
        pause = min(pause * 2, _PAUSE_MAX)
