"""The project's own exception types.

Everything gapwatch raises on purpose derives from :class:`GapwatchError`, so callers
(and the monitor's hot path) can catch exactly what is documented and nothing else.
"""

from __future__ import annotations


class GapwatchError(Exception):
    """Base class of every error gapwatch raises deliberately."""


class MalformedStampError(GapwatchError):
    """A record carries gapwatch headers that cannot be trusted.

    ``reason`` is a short, stable, human-readable explanation, suitable as a log field
    (for example ``"missing gapwatch-seq"`` or ``"gapwatch-epoch is not decimal"``).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SnapshotError(GapwatchError):
    """A tracker snapshot cannot be restored (damaged, foreign, or of an unknown version).

    ``reason`` says what was wrong; the caller should start the partition from scratch
    (and say so) rather than trust a half-read state.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TrackerConfigError(GapwatchError):
    """A tracker setting is out of range; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class ConfigError(GapwatchError):
    """A configuration value is missing or invalid.

    ``key`` is the configuration key (as written in the YAML file, e.g. ``grace_period``)
    and ``source`` says where the bad value came from (a flag, an environment variable,
    the file, or ``default``), so the message can point the operator at the right place.
    """

    def __init__(self, key: str, problem: str, *, source: str | None = None) -> None:
        where = f" (from {source})" if source else ""
        super().__init__(f"{key}{where}: {problem}")
        self.key = key
        self.problem = problem
        self.source = source


class KafkaStartupError(GapwatchError):
    """A Kafka client could not start: unreachable servers, a refused TLS handshake, failed
    SASL authentication, a missing topic or another error the cluster answered.

    The message is one line for the operator, naming each server tried and why it failed,
    and Kafka errors by their name; it never holds a password.
    """


class KafkaAuthorizationError(KafkaStartupError):
    """The cluster's ACLs do not let gapwatch's principal do what it needs.

    The message is the one line of :func:`gapwatch.kafka.acls.denied_line`: the permission
    to grant, on which resource, to which principal.
    """
