"""Real Prometheus and Alertmanager servers on loopback, for tests of gapwatch's ops files.

:func:`run_prometheus` and :func:`run_alertmanager` start Debian's ``prometheus`` and
``prometheus-alertmanager`` binaries (installed by ``deploy/install-ops-tools.sh``) on a
free 127.0.0.1 port with their state in a directory the caller owns, wait until the server
says it is ready, and stop the whole process group on exit. Every wait is bounded. The
handles they yield speak just enough of each HTTP API for tests: instant queries, rules
and alerts.

Nothing here knows about gapwatch's metrics; the tests bring the rule files, the
Alertmanager configuration and the targets.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gapwatch.errors import GapwatchError
from gapwatch.testing._config import HOST, allocate_ports

JsonObject = dict[str, Any]
T = TypeVar("T")

#: The scrape job :func:`run_prometheus` puts its targets in; the shipped rules select on it.
SCRAPE_JOB = "gapwatch"

_STOP_TIMEOUT = 10.0
_HTTP_TIMEOUT = 5.0
# A top-level comparison with a number at the end of an alerting rule's expression.
_TRAILING_COMPARISON = re.compile(r"^(?P<query>.+?)\s*(?:==|!=|>=|<=|>|<)\s*(?:bool\s+)?-?[\d.]+$")


class OpsServerError(GapwatchError):
    """Prometheus or Alertmanager is missing, did not start, or answered with an error."""


def find_binary(name: str) -> str:
    """The path of ``name`` on PATH, or :class:`OpsServerError` saying how to install it."""
    path = shutil.which(name)
    if path is None:
        raise OpsServerError(f"{name} is not installed: run deploy/install-ops-tools.sh")
    return path


def wait_until(check: Callable[[], T | None], *, timeout: float, what: str) -> T:
    """Call ``check`` every 0.25 s until it returns something other than None, or time out.

    Raises :class:`OpsServerError` naming ``what`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise OpsServerError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)


def strip_comparison(expr: str) -> str:
    """The query of an alerting rule ``<query> <op> <number>``, without the comparison."""
    match = _TRAILING_COMPARISON.match(" ".join(expr.split()))
    if match is None:
        raise ValueError(f"not of the form '<query> <op> <number>': {expr!r}")
    return match.group("query")


def _request(url: str, *, body: object = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT) as response:
            payload = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise OpsServerError(f"{url}: HTTP {exc.code}: {detail}") from None
    except (OSError, urllib.error.URLError) as exc:
        raise OpsServerError(f"{url}: {exc}") from None
    return json.loads(payload) if payload else None


def _is_ready(base_url: str) -> bool | None:
    try:
        with urllib.request.urlopen(f"{base_url}/-/ready", timeout=1.0) as response:
            return True if response.status == 200 else None
    except (OSError, urllib.error.URLError):
        return None


@dataclass(frozen=True, slots=True)
class PrometheusServer:
    """A running Prometheus: its base URL and a few calls of its HTTP API (v1)."""

    url: str

    def _data(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        answer = _request(f"{self.url}{path}{query}")
        if not isinstance(answer, dict) or answer.get("status") != "success":
            raise OpsServerError(f"{path} failed: {answer!r}")
        return answer["data"]

    def query(self, expr: str) -> list[JsonObject]:
        """The series an instant query returns now (a scalar counts as one series).

        Raises :class:`OpsServerError` carrying Prometheus's message if the query is invalid.
        """
        data = self._data("/api/v1/query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def rules(self) -> list[JsonObject]:
        """Every loaded rule, each with its group's name added under ``group``."""
        groups = self._data("/api/v1/rules")["groups"]
        return [{**rule, "group": group["name"]} for group in groups for rule in group["rules"]]

    def alerts(self) -> list[JsonObject]:
        """The pending and firing alerts."""
        return list(self._data("/api/v1/alerts")["alerts"])

    def targets(self) -> list[JsonObject]:
        """The active scrape targets with their health."""
        return list(self._data("/api/v1/targets")["activeTargets"])


@dataclass(frozen=True, slots=True)
class AlertmanagerServer:
    """A running Alertmanager: its base URL and its alerts API (v2)."""

    url: str

    def alerts(self) -> list[JsonObject]:
        """Every alert it holds, including silenced and inhibited ones (``status.state``)."""
        answer = _request(f"{self.url}/api/v2/alerts")
        if not isinstance(answer, list):
            raise OpsServerError(f"/api/v2/alerts returned {answer!r}")
        return answer

    def post_alerts(self, alerts: Sequence[Mapping[str, object]]) -> None:
        """Send alerts as a client would (``POST /api/v2/alerts``)."""
        _request(f"{self.url}/api/v2/alerts", body=list(alerts))


@contextmanager
def _server_process(
    argv: Sequence[str], *, base_url: str, log_path: Path, startup_timeout: float
) -> Iterator[None]:
    """Run ``argv`` in its own process group until the caller is done with it.

    The server's output goes to ``log_path``; if it exits or does not become ready in time
    the error carries the log's tail.
    """
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def ready() -> bool | None:
            if process.poll() is not None:
                raise OpsServerError(f"{argv[0]} exited with {process.returncode}")
            return _is_ready(base_url)

        try:
            wait_until(ready, timeout=startup_timeout, what=f"{argv[0]} at {base_url}/-/ready")
        except OpsServerError as exc:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise OpsServerError(f"{exc}\n{tail}") from None
        yield
    finally:
        _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, then SIGKILL it if it has not exited within the timeout."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=_STOP_TIMEOUT)
    except ProcessLookupError:
        process.wait(timeout=_STOP_TIMEOUT)


def prometheus_config(
    *,
    scrape_targets: Sequence[str],
    rule_files: Sequence[Path],
    alertmanager_url: str | None,
    interval: str,
) -> JsonObject:
    """A Prometheus configuration scraping ``scrape_targets`` in job :data:`SCRAPE_JOB`."""
    config: JsonObject = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path.resolve()) for path in rule_files],
        "scrape_configs": [
            {"job_name": SCRAPE_JOB, "static_configs": [{"targets": list(scrape_targets)}]}
        ],
    }
    if alertmanager_url is not None:
        parsed = urllib.parse.urlsplit(alertmanager_url)
        config["alerting"] = {
            "alertmanagers": [
                {"scheme": parsed.scheme, "static_configs": [{"targets": [parsed.netloc]}]}
            ]
        }
    return config


@contextmanager
def run_prometheus(
    *,
    workdir: Path,
    scrape_targets: Sequence[str] = (),
    rule_files: Sequence[Path] = (),
    alertmanager_url: str | None = None,
    interval: str = "1s",
    startup_timeout: float = 30.0,
) -> Iterator[PrometheusServer]:
    """Run Prometheus on loopback, scraping and evaluating every ``interval``.

    ``workdir`` receives the generated ``prometheus.yml``, the TSDB and ``prometheus.log``.
    JSON is valid YAML, so the configuration is written as JSON.
    """
    binary = find_binary("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "prometheus.yml"
    config = prometheus_config(
        scrape_targets=scrape_targets,
        rule_files=rule_files,
        alertmanager_url=alertmanager_url,
        interval=interval,
    )
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    (port,) = allocate_ports(1)
    url = f"http://{HOST}:{port}"
    argv = [
        binary,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address={HOST}:{port}",
        "--log.level=warn",
    ]
    log_path = workdir / "prometheus.log"
    with _server_process(argv, base_url=url, log_path=log_path, startup_timeout=startup_timeout):
        yield PrometheusServer(url=url)


@contextmanager
def run_alertmanager(
    *, workdir: Path, config_file: Path, startup_timeout: float = 30.0
) -> Iterator[AlertmanagerServer]:
    """Run Alertmanager on loopback with ``config_file``, as a single node (no gossip).

    ``workdir`` receives its notification log and silences, and ``alertmanager.log``.
    """
    binary = find_binary("prometheus-alertmanager")
    workdir.mkdir(parents=True, exist_ok=True)
    (port,) = allocate_ports(1)
    url = f"http://{HOST}:{port}"
    argv = [
        binary,
        f"--config.file={config_file.resolve()}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address={HOST}:{port}",
        # An empty cluster address turns the gossip mesh (and its :9094 listener) off.
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    log_path = workdir / "alertmanager.log"
    with _server_process(argv, base_url=url, log_path=log_path, startup_timeout=startup_timeout):
        yield AlertmanagerServer(url=url)
