"""Errors raised by the Kafka test bed, all below :class:`gapwatch.errors.GapwatchError`."""

from __future__ import annotations

from gapwatch.errors import GapwatchError


class KafkaTestbedError(GapwatchError):
    """Base class of everything the test bed raises on purpose."""


class ToolMissingError(KafkaTestbedError):
    """A required external program (``java`` or ``mvn``) is not installed or not on PATH."""


class KafkaFetchError(KafkaTestbedError):
    """Maven could not download Kafka's jars (for example, Maven Central is unreachable)."""


class NodeStartError(KafkaTestbedError):
    """A Kafka node failed to format its storage or to start; the message has its log tail."""


class ClusterStateError(KafkaTestbedError):
    """The state directory does not describe a usable cluster (missing, stale or in use)."""


class TopicError(KafkaTestbedError):
    """The broker refused a topic operation, or the topic never got leaders in time."""


class MirrorError(KafkaTestbedError):
    """MirrorMaker 2 did not start, exited, or did not copy in time; the message names its log."""
