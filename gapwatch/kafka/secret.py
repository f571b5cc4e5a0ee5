"""A credential that never shows itself by accident: :class:`Secret`, and reading one from a file.

Passwords travel through configuration objects that get logged, formatted into error
messages and shown by debuggers; wrapping them in :class:`Secret` makes ``repr()``,
``str()`` and f-strings print a mask, so only code that calls :meth:`Secret.reveal`
(the place handing the value to aiokafka) ever sees it.
"""

from __future__ import annotations

import hmac
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
