"""Building and running the JVM test applications of ``clients/java`` from pytest.

``make java`` builds the library jar, its test applications (``target/test-classes``) and
the classpath file they run with (``target/test-apps.classpath``: kafka-clients,
kafka-streams and their dependencies, from Maven). :func:`java_classpath` builds them once
if a test runs without ``make java`` first.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx

from gapwatch.monitor.app import RunningMonitor

JAVA_DIR = Path(__file__).resolve().parents[2] / "clients" / "java"
TARGET = JAVA_DIR / "target"
CLASSPATH_FILE = TARGET / "test-apps.classpath"
BUILD_TIMEOUT_S = 900.0


def java_classpath() -> str:
    """The classpath of the test applications: library jar, test classes, Kafka jars."""
    jars = sorted(TARGET.glob("gapwatch-clients-*.jar"))
    if not jars or not CLASSPATH_FILE.is_file() or not (TARGET / "test-classes").is_dir():
        mvn = shutil.which("mvn")
        assert mvn is not None, "Maven (mvn) is needed to build clients/java: run `make java`"
        subprocess.run(
            [mvn, "-q", "-B", "-f", str(JAVA_DIR / "pom.xml"), "package", "-DskipTests"],
            check=True,
            timeout=BUILD_TIMEOUT_S,
        )
        jars = sorted(TARGET.glob("gapwatch-clients-*.jar"))
    dependencies = CLASSPATH_FILE.read_text().strip()
    return ":".join([str(jars[-1]), str(TARGET / "test-classes"), dependencies])


async def run_java_app(
    classpath: str, main_class: str, *args: str, timeout_s: float = 240.0
) -> list[dict[str, Any]]:
    """Run one test application to its end; returns the JSON lines it printed.

    Killed (and the test failed) if it runs longer than ``timeout_s``.
    """
    java = shutil.which("java")
    assert java is not None, "a Java 17+ runtime is needed for the JVM client tests"
    process = await asyncio.create_subprocess_exec(
        java,
        "-Xmx512m",
        "-XX:+UseSerialGC",
        "-cp",
        classpath,
        f"io.gapwatch.clients.apps.{main_class}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"{main_class} did not finish within {timeout_s}s") from None
    assert process.returncode == 0, (
        f"{main_class} exited with {process.returncode}:\n{stderr.decode(errors='replace')[-4000:]}"
    )
    return [json.loads(line) for line in stdout.decode().splitlines() if line.startswith("{")]


async def findings(monitor: RunningMonitor, topic: str) -> tuple[list[Any], list[Any], str]:
    """(gaps of ``topic``, its partitions in ``/streams``, ``/metrics`` text) over HTTP."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{monitor.http_port}") as http:
        gaps = (await http.get("/gaps", params={"topic": topic, "limit": 5000})).json()["gaps"]
        streams = (await http.get("/streams")).json()["partitions"]
        metrics = (await http.get("/metrics")).text
    return gaps, [p for p in streams if p["topic"] == topic], metrics
