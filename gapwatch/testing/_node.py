"""One test-bed JVM: launching it in its own process group, signalling it, reading its logs.

A process is either *owned* (this Python process started it and holds its ``Popen``) or
*adopted* (the CLI found its PID in a state file). Every signal goes through
:meth:`JvmProcess.signal`, which first checks that the PID still belongs to this process's
command line, so a recycled PID is never signalled. :class:`NodeProcess` is a broker node's
JVM; MirrorMaker's (:mod:`.mirror`) is a plain :class:`JvmProcess`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from gapwatch.testing._config import HOST, JvmFiles, NodeSpec
from gapwatch.testing._errors import ToolMissingError

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A ``preexec_fn`` asking Linux to SIGKILL the JVM when its parent dies.

    This is what leaves no orphan JVM behind when pytest itself is SIGKILLed (atexit and
    fixture teardown never run then). Linux ties the signal to the parent *thread*, so it is
    only used when the cluster is started from the main thread.
    """

    def set_death_signal() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died between fork and prctl: then nobody would kill us later.
        if os.getppid() != parent_pid:
            os._exit(1)

    return set_death_signal


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a text file, or a note that it does not exist."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


class JvmProcess:
    """One JVM whose files ``files`` describes: start, signal, liveness, logs."""

    __slots__ = ("_popen", "files", "is_paused", "is_stopping", "pid")

    def __init__(self, files: JvmFiles, pid: int | None = None) -> None:
        self.files = files
        self.pid = pid
        self.is_paused = False
        # SIGTERM was sent: the JVM may still be running its controlled shutdown.
        self.is_stopping = False
        self._popen: subprocess.Popen[bytes] | None = None

    def launch(self, command: Sequence[str], *, detach: bool) -> None:
        """Start the JVM in a new session, output to ``stdout.log``, never the terminal.

        A new session (and so process group) keeps Ctrl-C in the terminal away from the
        JVMs: teardown, not the terminal, decides how they stop. ``detach`` skips the
        parent-death signal so the CLI's ``up`` can exit and leave the cluster running.
        """
        self.files.logs_dir.mkdir(parents=True, exist_ok=True)
        use_death_signal = not detach and threading.current_thread() is threading.main_thread()
        with self.files.stdout_path.open("ab") as out:
            self._popen = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                preexec_fn=_die_with_parent(os.getpid()) if use_death_signal else None,
            )
        self.pid = self._popen.pid
        self.is_paused = False
        self.is_stopping = False

    def is_healthy(self) -> bool:
        """Running, not paused and not asked to stop."""
        return self.is_running() and not self.is_paused and not self.is_stopping

    def is_running(self) -> bool:
        """Whether the JVM exists and has not exited (a paused JVM is running)."""
        if self.pid is None:
            return False
        if self._popen is not None:
            return self._popen.poll() is None
        return _is_alive(self.pid) and self._owns_pid()

    def exit_code(self) -> int | None:
        """The JVM's exit status if this process started it and it has exited."""
        return None if self._popen is None else self._popen.poll()

    def signal(self, sig: signal.Signals) -> bool:
        """Send ``sig`` to the node's process group; ``False`` if it is not running.

        Returns as soon as the signal is sent: never waits for Kafka to react.
        """
        if not self.is_running() or self.pid is None:
            return False
        try:
            # start_new_session made the JVM its group's leader, so pgid == pid.
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            return False
        if sig == signal.SIGTERM:
            self.is_stopping = True
        if sig == signal.SIGSTOP:
            self.is_paused = True
        elif sig in (signal.SIGCONT, signal.SIGKILL):
            self.is_paused = False
        return True

    def wait_exit(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the JVM to exit; ``True`` if it did."""
        deadline = time.monotonic() + timeout
        while self.is_running():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def terminate(self, timeout: float = 10.0) -> None:
        """SIGTERM (after SIGCONT if paused), then SIGKILL if still alive after ``timeout``."""
        if self.is_paused:
            self.signal(signal.SIGCONT)
        if self.signal(signal.SIGTERM) and self.wait_exit(timeout):
            return
        self.kill_and_reap()

    def kill_and_reap(self, timeout: float = 10.0) -> None:
        """SIGKILL and wait until the process is really gone (no zombie, no warning)."""
        self.signal(signal.SIGKILL)
        if self._popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout)
        else:
            self.wait_exit(timeout)

    def log_tail(self, lines: int = 30) -> str:
        """Tail of ``server.log`` and of the JVM's stdout, for error messages."""
        return (
            f"--- {self.files.server_log_path} (last {lines} lines) ---\n"
            f"{tail(self.files.server_log_path, lines)}\n"
            f"--- {self.files.stdout_path} (last {lines} lines) ---\n"
            f"{tail(self.files.stdout_path, lines)}"
        )

    def _owns_pid(self) -> bool:
        """Whether ``pid``'s command line is this JVM's (guards against recycled PIDs)."""
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return False
        return str(self.files.config_path).encode() in cmdline


class NodeProcess(JvmProcess):
    """The JVM of one broker+controller node, with its ports and ids in :attr:`spec`."""

    __slots__ = ("spec",)

    def __init__(self, spec: NodeSpec, pid: int | None = None) -> None:
        super().__init__(spec, pid)
        self.spec = spec


def _is_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Field 3, after the parenthesised command name, is the state; Z = zombie, X = dead.
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def run_tool(command: Sequence[str], *, timeout: float) -> tuple[int, str]:
    """Run a short-lived Kafka tool (e.g. StorageTool); exit code and combined output."""
    result = subprocess.run(
        list(command),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return result.returncode, (result.stdout + result.stderr).strip()


def find_java() -> str:
    """``$JAVA_HOME/bin/java`` if set, else ``java`` on PATH; Kafka 4.x needs Java 17+."""
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise ToolMissingError("'java' is not on PATH (and JAVA_HOME is unset); Kafka needs 17+")
    return java


def port_accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False
