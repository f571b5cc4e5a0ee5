"""Fetching Apache Kafka's jars from Maven Central, once, into a local cache.

Two sets of jars, each resolved by Maven with all its runtime dependencies: the broker's
(:data:`BROKER_JARS`) and MirrorMaker 2's (:data:`MIRROR_JARS`, ``connect-mirror`` and the
Connect runtime it runs on). Layout: ``<cache root>/<version>/libs/*.jar`` plus
``<cache root>/<version>/COMPLETE`` for the broker, the same under
``<cache root>/mirror-maker/<version>/`` for MirrorMaker. The marker is written last, after
an atomic rename, so its presence means the jars are whole; with it present
:func:`fetch_kafka` (:func:`fetch_mirror_maker`) returns without running Maven at all.
"""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from gapwatch.testing._config import LOG4J_VERSION, cache_root, resolve_version
from gapwatch.testing._errors import KafkaFetchError, ToolMissingError

MARKER_NAME = "COMPLETE"
MAVEN_ARGS_ENV = "GAPWATCH_MAVEN_ARGS"

# Maven has no distinct exit code for "network"; these phrases are how its resolver reports
# an unreachable repository (DNS, refused, timeout, proxy, offline mode).
_NETWORK_HINTS = (
    "Could not transfer",
    "UnknownHostException",
    "Connection refused",
    "Network is unreachable",
    "connect timed out",
    "Connect to ",
    "Read timed out",
    "No route to host",
    "offline mode",
    "Temporary failure in name resolution",
    # With an empty ~/.m2 and no network, resolving the plugin fails first.
    "No plugin found for prefix",
    "Plugin org.apache.maven.plugins:maven-dependency-plugin",
)

# How Maven reports an artifact the repository does not have; "was not found in" is its
# wording when the miss is remembered from an earlier attempt (cached in ~/.m2).
_NOT_FOUND_HINTS = ("Could not find artifact", "could not be resolved", "was not found in")

#: Fully qualified and pinned, so the build is reproducible and Maven does not have to look
#: the ``dependency:`` prefix up in repository metadata first.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True, slots=True)
class JarSet:
    """One set of jars fetched together: its main Maven artifact and where it is cached."""

    #: How messages name it ("Kafka", "MirrorMaker 2").
    title: str
    #: ``org.apache.kafka:<artifact_id>:<version>``, resolved with its runtime dependencies.
    artifact_id: str
    #: Directory under the cache root holding one directory per version ("" = the root).
    cache_subdir: str


#: The broker, controller and tools (``kafka.Kafka``, ``StorageTool``).
BROKER_JARS = JarSet("Kafka", "kafka_2.13", "")
#: MirrorMaker 2 in dedicated mode (``org.apache.kafka.connect.mirror.MirrorMaker``): its
#: connectors, the Connect runtime, and their dependencies (Jetty, Jersey...), 61 jars for
#: 4.3.1. Kept apart from the broker's so neither classpath carries the other's libraries.
MIRROR_JARS = JarSet("MirrorMaker 2", "connect-mirror", "mirror-maker")


@dataclass(frozen=True, slots=True)
class FetchResult:
    """Where the jars are and whether this call had to run Maven."""

    jars_dir: Path
    downloaded: bool
    seconds: float


def version_dir(version: str, root: Path | None = None, jars: JarSet = BROKER_JARS) -> Path:
    """Cache directory of one Kafka version's ``jars``."""
    return (root or cache_root()) / jars.cache_subdir / version


def is_fetched(version: str, root: Path | None = None, jars: JarSet = BROKER_JARS) -> bool:
    """Whether the completed-marker of ``version``'s ``jars`` exists."""
    return (version_dir(version, root, jars) / MARKER_NAME).is_file()


def render_pom(version: str, jars: JarSet = BROKER_JARS) -> str:
    """A throwaway POM whose runtime dependencies are exactly the classpath of ``jars``."""
    log4j = escape(LOG4J_VERSION)
    deps = [
        ("org.apache.kafka", jars.artifact_id, escape(version)),
        # Kafka 4.x logs through SLF4J 1.7; this is the log4j2 binding for SLF4J 1.x (not
        # log4j-slf4j2-impl). Without it SLF4J falls back to a no-op logger.
        ("org.apache.logging.log4j", "log4j-slf4j-impl", log4j),
        ("org.apache.logging.log4j", "log4j-core", log4j),
        ("org.apache.logging.log4j", "log4j-api", log4j),
    ]
    body = "\n".join(
        "    <dependency><groupId>{}</groupId><artifactId>{}</artifactId>"
        "<version>{}</version></dependency>".format(*dep)
        for dep in deps
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>gapwatch.testing</groupId>
  <artifactId>kafka-jars</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
{body}
  </dependencies>
</project>
"""


def maven_command(mvn: str, output_dir: Path, extra_args: Sequence[str] = ()) -> list[str]:
    """The Maven invocation copying every runtime dependency into ``output_dir``."""
    return [
        mvn,
        "-B",
        "-q",
        "-Dstyle.color=never",
        *extra_args,
        f"{DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={output_dir}",
    ]


def fetch_kafka(
    version: str | None = None,
    *,
    root: Path | None = None,
    maven_args: Sequence[str] | None = None,
    timeout: float = 900.0,
) -> FetchResult:
    """Make sure Kafka ``version``'s broker jars are cached; download them with Maven if not.

    ``maven_args`` are extra Maven options (default: ``$GAPWATCH_MAVEN_ARGS`` split like a
    shell), e.g. ``-s settings.xml`` for a mirror. Concurrent callers (several test runs on one
    machine) serialise on a lock file, so only one downloads.
    """
    return fetch_jars(BROKER_JARS, version, root=root, maven_args=maven_args, timeout=timeout)


def fetch_mirror_maker(
    version: str | None = None,
    *,
    root: Path | None = None,
    maven_args: Sequence[str] | None = None,
    timeout: float = 900.0,
) -> FetchResult:
    """Like :func:`fetch_kafka`, for MirrorMaker 2's jars (``connect-mirror`` at ``version``)."""
    return fetch_jars(MIRROR_JARS, version, root=root, maven_args=maven_args, timeout=timeout)


def fetch_jars(
    jars: JarSet,
    version: str | None = None,
    *,
    root: Path | None = None,
    maven_args: Sequence[str] | None = None,
    timeout: float = 900.0,
) -> FetchResult:
    """Make sure ``jars`` of Kafka ``version`` are cached; download them with Maven if not."""
    started = time.monotonic()
    version = resolve_version(version)
    target = version_dir(version, root, jars)
    # Fast path: no lock, no Maven, no subprocess at all.
    if is_fetched(version, root, jars):
        return FetchResult(target / "libs", False, time.monotonic() - started)
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ToolMissingError(
            f"Maven ('mvn') is not on PATH; it is needed once to download {jars.title}'s jars "
            "(Debian/Ubuntu: apt-get install maven)"
        )
    if maven_args is None:
        maven_args = shlex.split(os.environ.get(MAVEN_ARGS_ENV, ""))
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_fetched(version, root, jars):
            return FetchResult(target / "libs", False, time.monotonic() - started)
        _download(mvn, jars, version, target, maven_args, timeout)
    return FetchResult(target / "libs", True, time.monotonic() - started)


def _download(
    mvn: str, jars: JarSet, version: str, target: Path, maven_args: Sequence[str], timeout: float
) -> None:
    with tempfile.TemporaryDirectory(prefix=f".{version}-", dir=target.parent) as tmp:
        work = Path(tmp)
        (work / "pom.xml").write_text(render_pom(version, jars))
        libs = work / "out" / "libs"
        command = maven_command(mvn, libs, maven_args)
        try:
            result = subprocess.run(
                command,
                cwd=work,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise KafkaFetchError(
                f"Maven did not finish downloading {jars.title} {version} within {timeout:.0f} s"
            ) from exc
        output = _ANSI_RE.sub("", result.stdout + result.stderr).strip()
        if result.returncode != 0:
            raise KafkaFetchError(explain_failure(version, output, jars))
        names = sorted(p.name for p in libs.glob("*.jar"))
        main_jar = f"{jars.artifact_id}-{version}.jar"
        if main_jar not in names:
            raise KafkaFetchError(f"Maven succeeded but {main_jar} is missing")
        (work / "out" / MARKER_NAME).write_text("\n".join(names) + "\n")
        if target.exists():
            # A half-finished earlier attempt (no marker): replace it wholesale.
            shutil.rmtree(target)
        # Rename is atomic within one file system, so readers never see a partial libs/.
        os.rename(work / "out", target)


def explain_failure(version: str, output: str, jars: JarSet = BROKER_JARS) -> str:
    """What to tell the user when Maven failed to fetch ``jars`` of Kafka ``version``, from
    its output."""
    tail = "\n".join(output.splitlines()[-25:])
    what = f"{jars.title} {version}"
    if any(hint in output for hint in _NETWORK_HINTS):
        return (
            f"could not download {what} from Maven Central (is it reachable, or "
            f"is a mirror configured in ~/.m2/settings.xml / ${MAVEN_ARGS_ENV}?). "
            f"Maven said:\n{tail}"
        )
    if any(hint in output for hint in _NOT_FOUND_HINTS):
        return f"Maven could not resolve {what} (does the version exist?):\n{tail}"
    return f"Maven failed while fetching {what}:\n{tail}"
