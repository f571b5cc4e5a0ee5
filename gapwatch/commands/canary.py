"""``gapwatch canary``: write the canary topic, a partition led by each broker, and serve
its per-broker metrics, until SIGTERM or Ctrl-C.

It only writes. Loss on the canary topic is found by a monitor that watches it: run
``gapwatch monitor --topic __gapwatch_canary`` (or ``gapwatch monitor --canary``, which
writes and watches in one process instead of this command). The records, the rate and
the topic's footprint: ``docs/operations.md``, section "Canary". Exit status: 0 after a
signal, 1 if the canary could not start, 2 on a bad option.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from prometheus_client import CollectorRegistry, start_http_server

from gapwatch.errors import ConfigError, GapwatchError
from gapwatch.kafka.acls import principal_of
from gapwatch.kafka.canary.metrics import CanaryCollector
from gapwatch.kafka.canary.runner import Canary
from gapwatch.kafka.canary.settings import DEFAULT_CANARY_TOPIC, CanarySettings
from gapwatch.kafka.settings import KafkaSettings, client_kwargs
from gapwatch.kafka.startup_errors import explained_start
from gapwatch.monitor.config_sources import add_security_arguments, load_security

log = logging.getLogger(__name__)
DEFAULT_METRICS_PORT = 8573


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``canary`` sub-command."""
    parser = subparsers.add_parser(
        "canary",
        help="write a canary partition led by each broker (a monitor must watch the topic)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = CanarySettings()
    add = parser.add_argument
    add(
        "--bootstrap-servers",
        default=os.environ.get("GAPWATCH_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        help="Kafka bootstrap servers (default: $GAPWATCH_BOOTSTRAP_SERVERS or 127.0.0.1:9092)",
    )
    add("--canary-topic", default=DEFAULT_CANARY_TOPIC, help="the canary topic")
    add("--rate", type=float, default=defaults.rate, help="records/s per partition (broker)")
    add("--request-timeout", type=float, default=defaults.request_timeout, help="seconds")
    add("--window", type=float, default=defaults.window, help="availability window (s)")
    add("--check-interval", type=float, default=defaults.check_interval, help="seconds")
    add("--departure", type=float, default=defaults.departure, help="seconds")
    add("--metrics-host", default="127.0.0.1", help="address of /metrics")
    add("--metrics-port", type=int, default=DEFAULT_METRICS_PORT, help="port (0: none)")
    add("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), default="INFO")
    add_security_arguments(parser)
    parser.set_defaults(handler=run)


def settings_from_args(args: argparse.Namespace) -> tuple[CanarySettings, KafkaSettings]:
    """The validated canary and connection settings; raises :class:`ConfigError`."""
    settings = CanarySettings(
        enabled=True,
        topic=args.canary_topic,
        rate=args.rate,
        request_timeout=args.request_timeout,
        window=args.window,
        check_interval=args.check_interval,
        departure=args.departure,
    )
    settings.validate()
    kafka = KafkaSettings(
        bootstrap_servers=tuple(args.bootstrap_servers.split(",")),
        client_id="gapwatch-canary",
        security=load_security(args, os.environ),
    )
    kafka.validate()
    return settings, kafka


def run(args: argparse.Namespace) -> int:
    """Handler of ``gapwatch canary``."""
    try:
        settings, kafka = settings_from_args(args)
    except ConfigError as exc:
        print(f"gapwatch canary: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return asyncio.run(_run(settings, kafka, args.metrics_host, args.metrics_port))
    except (GapwatchError, TimeoutError) as exc:
        print(f"gapwatch canary: {exc or 'timed out'}", file=sys.stderr)
        return 1


async def _run(settings: CanarySettings, kafka: KafkaSettings, host: str, port: int) -> int:
    kwargs = client_kwargs(kafka)
    canary = Canary(settings, client_kwargs=kwargs, principal=principal_of(kafka.security))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with explained_start(kwargs):
            await canary.start()
        if port:
            registry = CollectorRegistry()
            registry.register(CanaryCollector(canary))
            start_http_server(port, addr=host, registry=registry)
        print(
            f"gapwatch canary: writing {settings.topic} ({settings.rate:g} records/s per "
            f"broker); a monitor must watch this topic to find loss on it"
            + (f"; metrics on http://{host}:{port}/metrics" if port else ""),
            flush=True,
        )
        await stop.wait()
    finally:
        await canary.stop()
    return 0
