"""gapwatch: proves whether Kafka lost, duplicated or reordered any message."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gapwatch.version import __version__

__all__ = ["ConsumerVerifier", "__version__"]

if TYPE_CHECKING:
    from gapwatch.verifier import ConsumerVerifier


def __getattr__(name: str) -> Any:
    # Imported on first use: ``gapwatch --version`` and the CLI must not pay for aiokafka
    # and prometheus-client when they do not need the verifier.
    if name == "ConsumerVerifier":
        from gapwatch.verifier import ConsumerVerifier

        return ConsumerVerifier
    raise AttributeError(f"module 'gapwatch' has no attribute {name!r}")
