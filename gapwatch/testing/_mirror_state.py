"""The state file ``<state dir>/mirror.json``: what the CLI needs to find a MirrorMaker again.

``up`` exits while MirrorMaker keeps running, so ``stop``, ``start``, ``kill`` and ``down``
rebuild their handle from this file: the settings it runs with, its jars and its PID.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from gapwatch.testing._errors import ClusterStateError
from gapwatch.testing._mirror_config import MirrorSettings
from gapwatch.testing._state import write_private

MIRROR_STATE_FILE = "mirror.json"


@dataclass(frozen=True, slots=True)
class MirrorRecord:
    """One MirrorMaker as last started or signalled."""

    version: str
    java: str
    jars_dir: str
    heap: str
    pid: int | None
    settings: MirrorSettings


def write_mirror_state(state_dir: Path, record: MirrorRecord) -> None:
    """Replace the state file atomically, so a concurrent reader never sees half of it."""
    path = state_dir / MIRROR_STATE_FILE
    tmp = path.with_suffix(".tmp")
    write_private(tmp, json.dumps(asdict(record), indent=2) + "\n")
    tmp.replace(path)


def has_mirror_state(state_dir: Path) -> bool:
    """Whether ``state_dir`` holds a MirrorMaker state file (left by ``up`` or ``down``)."""
    return (state_dir / MIRROR_STATE_FILE).is_file()


def read_mirror_state(state_dir: Path) -> MirrorRecord:
    """Load the state file; :class:`ClusterStateError` if it is missing or unreadable."""
    path = state_dir / MIRROR_STATE_FILE
    try:
        raw = json.loads(path.read_text())
        settings = dict(raw["settings"])
        settings["extra"] = tuple((str(k), str(v)) for k, v in settings.get("extra", ()))
        pid = raw["pid"]
        return MirrorRecord(
            version=str(raw["version"]),
            java=str(raw["java"]),
            jars_dir=str(raw["jars_dir"]),
            heap=str(raw["heap"]),
            pid=None if pid is None else int(pid),
            settings=MirrorSettings(**settings),
        )
    except FileNotFoundError:
        raise ClusterStateError(f"no MirrorMaker state in {state_dir} (was 'up' run?)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ClusterStateError(f"unreadable MirrorMaker state {path}: {exc!r}") from exc
