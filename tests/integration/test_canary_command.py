"""``gapwatch canary`` as a process on the 1-node test bed: it writes, serves its metrics,
says that a monitor must watch its topic, and exits 0 on SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from monitor_support import metric_value

from gapwatch.testing.kafka import KafkaCluster

pytestmark = pytest.mark.kafka


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_canary_command_writes_serves_metrics_and_stops_on_sigterm(
    kafka: KafkaCluster, topic_name: str
) -> None:
    """Within 60 s broker 1 is available on the command's /metrics with writes counted;
    SIGTERM ends it with status 0 and the line naming the topic a monitor must watch."""
    topic = f"__gapwatch_canary_{topic_name}"
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gapwatch",
            "canary",
            "--bootstrap-servers",
            kafka.bootstrap_servers,
            "--canary-topic",
            topic,
            "--metrics-port",
            str(port),
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60.0
        text = ""
        while time.monotonic() < deadline:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2.0).text
            except httpx.TransportError:
                text = ""
            if metric_value(text, "gapwatch_canary_broker_available", broker="1") == 1.0:
                break
            assert process.poll() is None, process.communicate()
            time.sleep(0.5)
        assert metric_value(text, "gapwatch_canary_broker_available", broker="1") == 1.0
        assert metric_value(text, "gapwatch_canary_writes_total", broker="1") >= 1.0
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert f"writing {topic}" in stdout
    assert "a monitor must watch this topic" in stdout
