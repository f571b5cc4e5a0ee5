"""The ``gapwatch`` command line: one sub-command per module in ``gapwatch.commands``.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``handler`` to a callable taking the parsed namespace and returning an exit code.
Modules are imported lazily by name so that ``gapwatch --version`` stays instant and a
broken optional command cannot take the others down.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import cast

from gapwatch.version import __version__

# Order is the order shown in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "gapwatch.commands.loadgen",
    "gapwatch.commands.monitor",
    "gapwatch.commands.gaps",
    "gapwatch.commands.audit",
    "gapwatch.commands.acls",
    "gapwatch.commands.canary",
)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="gapwatch",
        description="Detects lost, duplicated and reordered Kafka records from producer stamps.",
    )
    parser.add_argument("--version", action="version", version=f"gapwatch {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gapwatch`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = cast("Handler | None", getattr(args, "handler", None))
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    return handler(args)
