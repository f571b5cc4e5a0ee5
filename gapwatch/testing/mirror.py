"""A real MirrorMaker 2 between two Kafka clusters, for tests.

Python use (``source`` and ``target`` are running :class:`~gapwatch.testing.kafka.KafkaCluster`
objects)::

    settings = MirrorSettings(source.bootstrap_servers, target.bootstrap_servers,
                              source_alias="src", topics="orders.*")
    with Mirror(settings) as mirror:               # returns once MirrorMaker copies
        mirror.remote_topic("orders")              # "src.orders" on the target
        mirror.stop()                              # SIGTERM: offsets stored, then exit
        await mirror.forget()                      # delete the stored offsets
        mirror.launch(offset_reset="latest")       # returns at once...
        await mirror.wait_copying()                # ...until a probe record arrives

Command line (``python -m gapwatch.testing.mirror --help``): ``fetch``, ``up``, ``start``,
``stop``, ``kill``, ``down``, ``status``, ``forget``, ``delete-records``. See
``docs/testing.md``.

MirrorMaker runs in dedicated mode (``org.apache.kafka.connect.mirror.MirrorMaker`` with an
``mm2.properties`` from :mod:`._mirror_config`) from the ``connect-mirror`` jars of the
brokers' Kafka version (:func:`._maven.fetch_mirror_maker`). Plaintext clusters only.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from aiokafka.errors import KafkaError

from gapwatch.testing import _admin, _mirror_admin, _mirror_watch
from gapwatch.testing._config import JVM_OPTS_ENV, jvm_command, resolve_version
from gapwatch.testing._errors import ClusterStateError, KafkaTestbedError, MirrorError
from gapwatch.testing._maven import FetchResult, fetch_mirror_maker
from gapwatch.testing._mirror_cli import build_parser
from gapwatch.testing._mirror_config import (
    DEFAULT_MIRROR_HEAP,
    DEFAULT_OFFSET_FLUSH_INTERVAL_MS,
    MIRROR_LOG4J2_PROPERTIES,
    MIRROR_MAKER_MAIN,
    OFFSET_RESETS,
    PROBE_TOPIC,
    REPLICATION_POLICIES,
    MirrorFiles,
    MirrorSettings,
    mm2_properties,
    render_mm2_properties,
)
from gapwatch.testing._mirror_state import (
    MirrorRecord,
    has_mirror_state,
    read_mirror_state,
    write_mirror_state,
)
from gapwatch.testing._node import JvmProcess, find_java, tail

__all__ = [
    "DEFAULT_OFFSET_FLUSH_INTERVAL_MS",
    "OFFSET_RESETS",
    "PROBE_TOPIC",
    "REPLICATION_POLICIES",
    "FetchResult",
    "Mirror",
    "MirrorError",
    "MirrorSettings",
    "fetch_mirror_maker",
]

#: Seconds a SIGTERMed MirrorMaker gets to stop its task and store its offsets.
STOP_TIMEOUT_S = 30.0

# What MirrorMaker's herder logs when the connector that copies records refuses its
# config; Connect then logs the errors, one a line, after _INVALID_CONFIG. (The checkpoint
# connector refusing, as it does with checkpoints off, does not stop the copying.)
_SOURCE_REFUSED = "Failed to configure MirrorSourceConnector"
_INVALID_CONFIG = "Connector configuration is invalid"


class Mirror:
    """One MirrorMaker 2 process copying ``settings.topics`` from source to target.

    With ``state_dir=None`` a temporary directory is used and deleted by :meth:`close`.
    ``detach=True`` (the CLI's ``up``) leaves the JVM running when this process exits;
    otherwise it never outlives it. Stopping MirrorMaker keeps its files and its stored
    offsets (they live on the target), so :meth:`start` carries on where it stopped.
    """

    def __init__(
        self,
        settings: MirrorSettings,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        version: str | None = None,
        heap: str = DEFAULT_MIRROR_HEAP,
        start_timeout: float = 180.0,
        detach: bool = False,
    ) -> None:
        settings.validate()
        self.settings = settings
        self.version = resolve_version(version)
        self.heap = heap
        self.start_timeout = start_timeout
        self.is_detached = detach
        #: Seconds from the last launch until a probe record arrived (``None`` before).
        self.last_copying_seconds: float | None = None
        self._owns_state_dir = state_dir is None
        self._state_dir = Path(state_dir).resolve() if state_dir is not None else None
        self._process: JvmProcess | None = None
        self._java = ""
        self._jars_dir = Path()
        self._launched_at = 0.0
        self._log_start = 0

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, *, offset_reset: str | None = None) -> Self:
        """:meth:`launch`, then block until MirrorMaker copies (:meth:`wait_copying`).

        Kills MirrorMaker again if it does not copy within ``start_timeout``; its log stays.
        """
        self.launch(offset_reset=offset_reset)
        try:
            _admin.run_sync(lambda: self.wait_copying(self.start_timeout))
        except BaseException:
            self.kill()
            raise
        return self

    def launch(self, *, offset_reset: str | None = None) -> None:
        """Write ``mm2.properties`` and start the JVM; returns at once (see :meth:`wait_copying`).

        ``offset_reset`` changes where partitions without a stored offset start, from now on.
        """
        if self.is_running():
            raise MirrorError(f"MirrorMaker is already running (pid {self.pid})")
        if offset_reset is not None:
            changed = dataclasses.replace(self.settings, offset_reset=offset_reset)
            changed.validate()
            self.settings = changed
        if not self._java:
            self._java = find_java()
            self._jars_dir = fetch_mirror_maker(self.version).jars_dir
        if self._state_dir is None:
            self._state_dir = Path(tempfile.mkdtemp(prefix="gapwatch-mirror-")).resolve()
        files = self.files
        files.state_dir.mkdir(parents=True, exist_ok=True)
        config = render_mm2_properties(mm2_properties(self.settings))
        if not files.config_path.is_file() or files.config_path.read_text() != config:
            self._drop_stored_configs()
        files.config_path.write_text(config)
        files.log4j_path.write_text(MIRROR_LOG4J2_PROPERTIES)
        command = jvm_command(
            java=self._java,
            jars_dir=self._jars_dir,
            node=files,
            state_dir=files.state_dir,
            heap=self.heap,
            main_class=MIRROR_MAKER_MAIN,
            args=[str(files.config_path)],
            extra_jvm_args=_extra_jvm_args(),
        )
        if not self.is_detached:
            atexit.unregister(self.close)  # once, however often it is relaunched
            atexit.register(self.close)
        process = JvmProcess(files)
        self._process = process
        self._launched_at = time.monotonic()
        # Only what this run logs counts (the log is appended to across restarts).
        self._log_start = (
            files.server_log_path.stat().st_size if files.server_log_path.exists() else 0
        )
        process.launch(command, detach=self.is_detached)
        self._save_state()

    def _drop_stored_configs(self) -> None:
        """Delete the connector configs an earlier run stored on the target.

        MirrorMaker's worker starts the connectors with the configs stored there, and only
        then writes the new ones from ``mm2.properties`` and restarts them: seen here, a
        start with ``offset_reset="latest"`` first copied from the earliest offset for a
        second. Without stored configs the first task already runs with the new ones.
        """
        target = self.settings.target_bootstrap
        try:
            _admin.run_sync(lambda: _mirror_admin.delete_topic(target, self.settings.configs_topic))
        except KafkaError as exc:
            raise MirrorError(f"cannot reach the target cluster at {target}: {exc!r}") from exc

    async def wait_copying(self, timeout_s: float | None = None) -> float:
        """Wait until a probe record written to the source now reaches the target; the
        seconds since :meth:`launch`. :class:`MirrorError` with the log's tail otherwise."""
        timeout = self.start_timeout if timeout_s is None else timeout_s
        try:
            await _mirror_watch.wait_copying(
                self.settings, timeout_s=timeout, failure=self._failure
            )
        except MirrorError as exc:
            raise MirrorError(f"{exc}\n{self._log_tail()}") from None
        except KafkaError as exc:
            raise MirrorError(
                f"a cluster did not answer while waiting for MirrorMaker to copy: {exc!r}\n"
                f"{self._log_tail()}"
            ) from exc
        self.last_copying_seconds = time.monotonic() - self._launched_at
        return self.last_copying_seconds

    async def wait_caught_up(self, topic: str, timeout_s: float = 60.0) -> None:
        """Wait until each partition of source ``topic`` has its newest record copied.

        Meant for healthy runs: a record MirrorMaker skipped (``latest`` after
        :meth:`forget`) never arrives, so only wait after writing to the source again."""
        try:
            await _mirror_watch.wait_caught_up(
                self.settings, topic, timeout_s=timeout_s, failure=self._failure
            )
        except MirrorError as exc:
            raise MirrorError(f"{exc}\n{self._log_tail()}") from None

    def stop(self, *, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """SIGTERM and wait: MirrorMaker stops its task, stores the offsets it copied and
        exits (SIGKILL if it has not after ``timeout_s``). ``False`` if it was not running."""
        process = self._process
        if process is None or not process.is_running():
            return False
        process.terminate(timeout=timeout_s)
        self._save_state()
        return True

    def kill(self) -> bool:
        """SIGKILL: MirrorMaker dies at once, as in a crash; whatever it copied since its
        last offset flush will be copied again. ``False`` if it was not running."""
        process = self._process
        if process is None or not process.is_running():
            return False
        process.kill_and_reap()
        self._save_state()
        return True

    def close(self) -> None:
        """Kill MirrorMaker if it runs (the data is throwaway) and delete the state
        directory if this object created it. Idempotent."""
        atexit.unregister(self.close)
        if self._process is not None:
            self._process.kill_and_reap()
            if not self._owns_state_dir and self._state_dir is not None:
                self._save_state()
        if self._owns_state_dir and self._state_dir is not None:
            shutil.rmtree(self._state_dir, ignore_errors=True)
            self._state_dir = None
        self._process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- what MirrorMaker depends on -----------------------------------------------------

    async def forget(self) -> bool:
        """Delete the source offsets MirrorMaker stored (``mm2-offsets.ALIAS.internal`` on
        the target), so each partition starts at the reset policy on the next start.

        Only while stopped: a running MirrorMaker would write them again. Returns whether
        there was anything to delete."""
        if self.is_running():
            raise MirrorError("forget needs MirrorMaker stopped (stop or kill it first)")
        return await _mirror_admin.delete_topic(
            self.settings.target_bootstrap, self.settings.offsets_topic
        )

    async def delete_source_records(self, topic: str, partition: int, before: int) -> int:
        """Move the source partition's log start to ``before``, as retention would; returns
        the new log start offset."""
        return await _mirror_admin.delete_records_before(
            self.settings.source_bootstrap, topic, partition, before
        )

    # -- facts ---------------------------------------------------------------------------

    def remote_topic(self, topic: str) -> str:
        """The target's name for source ``topic`` (``ALIAS.topic``, or ``topic`` if identity)."""
        return self.settings.remote_topic(topic)

    def is_running(self) -> bool:
        """Whether MirrorMaker's JVM is alive."""
        return self._process is not None and self._process.is_running()

    @property
    def pid(self) -> int | None:
        """The JVM's process id while it runs."""
        return self._process.pid if self.is_running() and self._process is not None else None

    @property
    def state_dir(self) -> Path:
        """The directory holding ``mm2.properties``, the logs and ``mirror.json``."""
        if self._state_dir is None:
            raise ClusterStateError("MirrorMaker has not been started")
        return self._state_dir

    @property
    def files(self) -> MirrorFiles:
        """Where MirrorMaker's config and logs are."""
        return MirrorFiles(self.state_dir)

    @property
    def log_path(self) -> Path:
        """MirrorMaker's log, ``<state dir>/logs/mm2.log``."""
        return self.files.server_log_path

    def _failure(self) -> str | None:
        """Why waiting for MirrorMaker is pointless now, if it is: its JVM is gone, or its
        herder refused a connector's configuration (it then idles without copying)."""
        if not self.is_running():
            code = self._process.exit_code() if self._process is not None else None
            return f"MirrorMaker exited (code {code})"
        log = _read_from(self.log_path, self._log_start).splitlines()
        refused = False
        for index, line in enumerate(log):
            refused = refused or _SOURCE_REFUSED in line
            if refused and _INVALID_CONFIG in line:
                reason = log[index + 1] if index + 1 < len(log) else line
                return f"MirrorMaker refused its configuration: {reason.strip()}"
        return None

    def _log_tail(self, lines: int = 40) -> str:
        if self._state_dir is None:
            return "(MirrorMaker never started: no log)"
        return (
            f"MirrorMaker's log: {self.log_path} (last {lines} lines):\n"
            f"{tail(self.log_path, lines)}\n"
            f"--- {self.files.stdout_path} ---\n{tail(self.files.stdout_path, 10)}"
        )

    # -- state file: lets the CLI act on a MirrorMaker started by another process --------

    def _save_state(self) -> None:
        record = MirrorRecord(
            version=self.version,
            java=self._java,
            jars_dir=str(self._jars_dir),
            heap=self.heap,
            pid=self.pid,
            settings=self.settings,
        )
        write_mirror_state(self.state_dir, record)

    @classmethod
    def attach(cls, state_dir: str | os.PathLike[str]) -> Mirror:
        """A handle on a MirrorMaker another process started (``up``), from its state file."""
        root = Path(state_dir).resolve()
        record = read_mirror_state(root)
        mirror = cls(record.settings, root, version=record.version, heap=record.heap, detach=True)
        mirror._java = record.java
        mirror._jars_dir = Path(record.jars_dir)
        if record.pid is not None:
            mirror._process = JvmProcess(mirror.files, pid=record.pid)
        return mirror


def _read_from(path: Path, offset: int, limit: int = 256 * 1024) -> str:
    """Up to ``limit`` bytes of ``path`` from byte ``offset`` on ("" if it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read(limit).decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _extra_jvm_args() -> list[str]:
    return shlex.split(os.environ.get(JVM_OPTS_ENV, ""))


# --- the command line (``python -m gapwatch.testing.mirror``) -------------------------------
#
# ``up`` starts a detached JVM and records its PID and settings in ``<state dir>/mirror.json``;
# every other command re-attaches through that file. The log path is the last line ``up``
# prints, for scripts.


def _up(args: argparse.Namespace) -> int:
    root = Path(args.state_dir).resolve()
    if _is_running_in(root):
        raise ClusterStateError(f"{root} already has a running MirrorMaker; run 'down' first")
    settings = MirrorSettings(
        source_bootstrap=args.source,
        target_bootstrap=args.target,
        source_alias=args.source_alias,
        topics=args.topics,
        replication_policy=args.replication_policy,
        offset_reset=args.offset_reset,
        offset_flush_interval_ms=args.offset_flush_interval_ms,
        refresh_topics_interval_s=args.refresh_topics_interval_s,
        extra=tuple(args.settings),
    )
    extra = {"heap": args.heap} if args.heap else {}
    mirror = Mirror(
        settings,
        root,
        version=args.kafka_version,
        detach=True,
        start_timeout=args.timeout,
        **extra,
    )
    _launch_and_report(mirror, args, offset_reset=None)
    return 0


def _is_running_in(root: Path) -> bool:
    """Whether ``root`` records a MirrorMaker that still runs (unreadable leftovers: no)."""
    if not has_mirror_state(root):
        return False
    try:
        return Mirror.attach(root).is_running()
    except ClusterStateError:
        return False


def _launch_and_report(
    mirror: Mirror, args: argparse.Namespace, *, offset_reset: str | None
) -> None:
    mirror.launch(offset_reset=offset_reset)
    settings = mirror.settings
    print(
        f"MirrorMaker pid {mirror.pid}: {settings.source_alias} ({settings.source_bootstrap}) -> "
        f"target ({settings.target_bootstrap}), topics /{settings.topics}/ as "
        f"{mirror.remote_topic('TOPIC')}, offset reset {settings.offset_reset}"
    )
    if not args.no_wait:
        try:
            seconds = _admin.run_sync(lambda: mirror.wait_copying(args.timeout))
        except BaseException:
            mirror.kill()
            raise
        print(f"copying {seconds:.1f} s after launch")
    print(mirror.log_path, flush=True)


def _start(args: argparse.Namespace) -> int:
    mirror = Mirror.attach(args.state_dir)
    mirror.start_timeout = args.timeout
    _launch_and_report(mirror, args, offset_reset=args.offset_reset)
    return 0


def _status(args: argparse.Namespace) -> int:
    mirror = Mirror.attach(args.state_dir)
    settings = mirror.settings
    state = f"running (pid {mirror.pid})" if mirror.is_running() else "stopped"
    print(f"MirrorMaker {state}")
    print(f"{settings.flow}: {settings.source_bootstrap} -> {settings.target_bootstrap}")
    print(
        f"topics /{settings.topics}/ as {mirror.remote_topic('TOPIC')}, offset reset "
        f"{settings.offset_reset}, offset flush every {settings.offset_flush_interval_ms} ms"
    )
    print(mirror.log_path)
    return 0


def _signal(args: argparse.Namespace) -> int:
    mirror = Mirror.attach(args.state_dir)
    done = mirror.kill() if args.command == "kill" else mirror.stop()
    if not done and args.command != "down":
        print("MirrorMaker is not running", file=sys.stderr)
        return 1
    return 0


def _forget(args: argparse.Namespace) -> int:
    mirror = Mirror.attach(args.state_dir)
    existed = _admin.run_sync(mirror.forget)
    topic = mirror.settings.offsets_topic
    print(f"deleted {topic}" if existed else f"{topic} did not exist")
    return 0


def _delete_records(args: argparse.Namespace) -> int:
    mirror = Mirror.attach(args.state_dir)
    start = _admin.run_sync(
        lambda: mirror.delete_source_records(args.topic, args.partition, args.before)
    )
    print(f"{args.topic}-{args.partition} on the source now starts at offset {start}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    result = fetch_mirror_maker(args.kafka_version)
    verb = "downloaded" if result.downloaded else "cached"
    print(
        f"MirrorMaker 2 {resolve_version(args.kafka_version)} jars {verb} in "
        f"{result.jars_dir} ({result.seconds:.1f} s)"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (1 with a message on test-bed errors)."""
    args = build_parser().parse_args(argv)
    commands = {
        "fetch": _fetch,
        "up": _up,
        "start": _start,
        "stop": _signal,
        "kill": _signal,
        "down": _signal,
        "status": _status,
        "forget": _forget,
        "delete-records": _delete_records,
    }
    try:
        return commands[args.command](args)
    except (KafkaTestbedError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
