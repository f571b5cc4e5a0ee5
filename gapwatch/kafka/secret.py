"""Keeping credentials out of output: :class:`Secret`, secret files, aiokafka's debug log.

Passwords travel through configuration objects that get logged, formatted into error
messages and shown by debuggers; wrapping them in :class:`Secret` makes ``repr()``,
``str()`` and f-strings print a mask, so only code that calls :meth:`Secret.reveal`
(the place handing the value to aiokafka) ever sees it. Once handed over, aiokafka logs
every request at DEBUG level, SASL authentication included (a PLAIN password or an
OAUTHBEARER token in clear): :func:`hide_sasl_exchanges` masks those lines.
"""

from __future__ import annotations

import hmac
import logging
from pathlib import Path

from gapwatch.errors import ConfigError

MASK = "**********"


class Secret:
    """A string whose ``repr``/``str`` is a fixed mask; :meth:`reveal` returns the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret wraps a str")
        self._value = value

    def reveal(self) -> str:
        """The wrapped value: call it only where the value leaves for the cluster."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return format(MASK, spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # Constant time: an equality check must not leak a prefix through timing.
        return hmac.compare_digest(self._value.encode(), other.reveal().encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling is how a value leaves the process: refuse rather than copy it silently.
        raise TypeError("a Secret cannot be pickled")


def as_secret(value: Secret | str | None) -> Secret | None:
    """``value`` wrapped as a :class:`Secret` (``None`` stays ``None``)."""
    if value is None or isinstance(value, Secret):
        return value
    return Secret(value)


def read_secret_file(path: Path, *, key: str) -> Secret:
    """The content of ``path`` as a :class:`Secret`, without its trailing newline.

    Raises :class:`ConfigError` naming ``key`` (never the content) when the file cannot
    be read or is empty. Read on every call, so a rotated file is picked up by the next
    client that connects.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(key, f"cannot read {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(key, f"{str(path)!r} is not UTF-8 text") from None
    # Files written by `echo` or a secrets mount end in a newline that is not part of it.
    value = text.rstrip("\r\n")
    if not value:
        raise ConfigError(key, f"{str(path)!r} is empty")
    return Secret(value)


# aiokafka 0.14 logs "Request to HOST:PORT ID: <request>" and the response at DEBUG in
# this logger, for SaslAuthenticate too, whose bytes are the credentials themselves.
AIOKAFKA_CONNECTION_LOGGER = "aiokafka.conn"


class SaslExchangeFilter(logging.Filter):
    """Masks SASL authentication requests and responses in a log record's arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(_is_sasl_exchange(arg) for arg in args):
            record.args = tuple(
                f"{type(arg).__name__}({MASK})" if _is_sasl_exchange(arg) else arg for arg in args
            )
        return True


def _is_sasl_exchange(value: object) -> bool:
    # Matched by name: the request and response classes are generated per API version.
    return type(value).__name__.startswith(("SaslAuthenticate", "SaslHandshake"))


def hide_sasl_exchanges(logger: logging.Logger | None = None) -> None:
    """Mask SASL exchanges in aiokafka's connection log (idempotent)."""
    logger = logger or logging.getLogger(AIOKAFKA_CONNECTION_LOGGER)
    if not any(isinstance(f, SaslExchangeFilter) for f in logger.filters):
        logger.addFilter(SaslExchangeFilter())
