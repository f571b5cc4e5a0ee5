"""``gapwatch monitor``: watch topics as a consumer group and serve /metrics and /gaps.

Every flag can also be set as ``GAPWATCH_<FLAG>`` or in the ``--config`` YAML file;
flags win over the environment, which wins over the file (``docs/monitor.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from gapwatch.errors import ConfigError, GapwatchError
from gapwatch.monitor.config_sources import add_arguments, load_config


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``monitor`` sub-command."""
    parser = subparsers.add_parser(
        "monitor",
        help="watch topics for lost, duplicated and reordered records",
        description=__doc__,
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``gapwatch monitor``: 0 after a clean stop, 1 on failure, 2 on bad config."""
    values = {k: v for k, v in vars(args).items() if k != "handler"}
    try:
        config = load_config(values, os.environ)
    except ConfigError as exc:
        print(f"gapwatch monitor: invalid configuration: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Imported here so that `gapwatch --help` does not load aiokafka, FastAPI and uvicorn.
    from gapwatch.commands.process_gc import freeze_survivors, tune_gc
    from gapwatch.monitor.app import run_monitor

    tune_gc()  # after the imports, so they are frozen too
    try:
        return asyncio.run(run_monitor(config, on_restore_step=freeze_survivors))
    except GapwatchError as exc:
        print(f"gapwatch monitor: {exc}", file=sys.stderr)
        return 1
    except TimeoutError:
        # Start-up is bounded (START_TIMEOUT): a cluster that answers but never finishes
        # what start-up asks (topic creation, joining the group) ends here.
        print(
            "gapwatch monitor: start-up timed out: the cluster did not answer in time",
            file=sys.stderr,
        )
        return 1
