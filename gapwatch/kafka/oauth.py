"""OAUTHBEARER tokens for aiokafka: from a command, a file or a Python callable.

aiokafka asks its ``sasl_oauth_token_provider`` (an ``AbstractTokenProvider``) for a
token every time a connection authenticates. The providers here differ only in where a
token comes from:

* :func:`command_token_source`: the standard output of a command (``gapwatch monitor
  --sasl-oauth-token-command``), e.g. a cloud CLI that prints an access token;
* :func:`file_token_source`: the content of a file another process keeps fresh (a
  Kubernetes projected service-account token, a sidecar), read again on each refresh;
* :class:`CallableTokenProvider`: a Python callable, for library users; it is called on
  every authentication, so it decides itself whether to cache (AWS's MSK signer signs
  locally and is cheap to call).

Command and file tokens are cached by :class:`CachingTokenProvider`, with these rules:

1. A token is fetched when none is cached or the refresh time has come.
2. A token's expiry is the ``exp`` claim when the token is a JWT (read without checking
   the signature: the broker checks it; we only need to know when to ask again), else
   the fetch time plus the configured lifetime.
3. The refresh time is 80% of the way from the fetch to the expiry (Kafka's own
   ``sasl.login.refresh.window.factor``), so a connection made just before the refresh
   still carries a token with time left.
4. When a refresh fails and the cached token has not expired, the cached one is used and
   the failure logged; once it has expired, the failure is raised.

Tokens are held as :class:`~gapwatch.kafka.secret.Secret` and never logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import inspect
import json
import logging
import math
import shlex
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from aiokafka.abc import AbstractTokenProvider
from aiokafka.errors import KafkaConnectionError

from gapwatch.errors import ConfigError, GapwatchError
from gapwatch.kafka.secret import Secret, read_secret_file

log = logging.getLogger(__name__)

TokenCallable = Callable[[], str | Awaitable[str]]
TokenSource = Callable[[], Awaitable[str]]

REFRESH_FACTOR = 0.8
DEFAULT_COMMAND_TIMEOUT_S = 30.0
_MAX_STDERR_CHARS = 200


class TokenError(GapwatchError, KafkaConnectionError):  # type: ignore[misc]  # untyped aiokafka
    """No OAUTHBEARER token could be obtained; the message says from where and why.

    Also a ``KafkaConnectionError``: raised inside aiokafka's authentication, it is then
    handled as the connection failure it is (logged per host at bootstrap, retried after
    start-up, as a broker outage is) instead of escaping from aiokafka's background tasks.
    """


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim (seconds since the epoch) of a JWT, or ``None`` if there is none.

    The signature is not checked: this only decides when to fetch a new token.
    """
    parts = token.split(".")
    if len(parts) < 2:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        return None
    return float(exp)


class CachingTokenProvider(AbstractTokenProvider):  # type: ignore[misc]  # untyped aiokafka
    """Caches the token of ``source`` and fetches a new one before it expires (rules 1-4).

    ``lifetime`` is how long a token without an ``exp`` claim is used; ``clock`` returns
    seconds since the epoch (injectable for tests); ``describe`` names the source in
    errors and logs (never the token); ``extensions`` are sent with every authentication.
    """

    def __init__(
        self,
        source: TokenSource,
        *,
        lifetime: float,
        describe: str,
        clock: Callable[[], float] = time.time,
        extensions: Mapping[str, str] | None = None,
    ) -> None:
        if not lifetime > 0:
            raise ValueError("lifetime must be > 0 seconds")
        self._extensions = dict(extensions or {})
        self._source = source
        self._lifetime = lifetime
        self._describe = describe
        self._clock = clock
        self._token: Secret | None = None
        self._expires_at = 0.0
        self._refresh_at = 0.0
        # One fetch at a time: every connection of every client authenticates at start-up.
        # A lock belongs to one event loop; settings reused under a new loop get a new one.
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    @property
    def expires_at(self) -> float | None:
        """When the cached token expires (seconds since the epoch), ``None`` before one."""
        return None if self._token is None else self._expires_at

    @property
    def refresh_at(self) -> float | None:
        """When the next call fetches a new token, ``None`` before the first one."""
        return None if self._token is None else self._refresh_at

    async def token(self) -> str:
        """A token that has not reached its refresh time (rule 1), fetching when needed."""
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token.reveal()
        async with self._fetch_lock():
            now = self._clock()
            if self._token is not None and now < self._refresh_at:
                return self._token.reveal()  # another caller refreshed while we waited
            try:
                value = await self._source()
            except TokenError as exc:
                if self._token is not None and now < self._expires_at:  # rule 4
                    log.warning("gapwatch: keeping the current OAUTHBEARER token: %s", exc)
                    return self._token.reveal()
                raise
            self._keep(value, now)
            return value

    def extensions(self) -> dict[str, str]:
        """SASL extensions sent with the token (aiokafka calls this on authentication)."""
        return dict(self._extensions)

    def _fetch_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    def _keep(self, value: str, now: float) -> None:
        expires_at = jwt_expiry(value)  # rule 2
        if expires_at is None:
            expires_at = now + self._lifetime
        elif expires_at <= now:
            log.warning("gapwatch: the OAUTHBEARER token from %s has expired", self._describe)
        self._token = Secret(value)
        self._expires_at = expires_at
        self._refresh_at = now + max(0.0, expires_at - now) * REFRESH_FACTOR  # rule 3


class CallableTokenProvider(AbstractTokenProvider):  # type: ignore[misc]  # untyped aiokafka
    """Asks ``fetch`` (a function returning a token, or an awaitable of one) every time."""

    def __init__(
        self, fetch: TokenCallable, *, extensions: Mapping[str, str] | None = None
    ) -> None:
        if not callable(fetch):
            raise TypeError("sasl_oauth_token_provider must be callable")
        self._fetch = fetch
        self._extensions = dict(extensions or {})

    def extensions(self) -> dict[str, str]:
        """SASL extensions sent with the token (aiokafka calls this on authentication)."""
        return dict(self._extensions)

    async def token(self) -> str:
        """The callable's token; :class:`TokenError` if it returned no usable string."""
        result = self._fetch()
        value = await result if inspect.isawaitable(result) else result
        if not isinstance(value, str) or not value.strip():
            raise TokenError("sasl_oauth_token_provider returned no token (expected a str)")
        return value.strip()


def command_token_source(
    command: str, *, timeout: float = DEFAULT_COMMAND_TIMEOUT_S
) -> TokenSource:
    """A source that runs ``command`` (split like a shell would, but run without one).

    The token is the command's standard output, stripped. Pipes and variables need an
    explicit shell: ``sh -c '...'``.
    """
    argv = shlex.split(command)
    if not argv:
        raise ConfigError("sasl_oauth_token_command", "must not be empty")
    name = argv[0]

    async def run_command() -> str:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise TokenError(
                f"sasl_oauth_token_command: cannot run {name!r}: {exc.strerror}"
            ) from None
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise TokenError(
                f"sasl_oauth_token_command: {name!r} gave no token within {timeout:g} s"
            ) from None
        if process.returncode != 0:
            # stderr says why (not logged in, wrong profile); stdout might be a token.
            reason = stderr.decode("utf-8", "replace").strip().splitlines()
            detail = f": {reason[-1][:_MAX_STDERR_CHARS]}" if reason else ""
            raise TokenError(
                f"sasl_oauth_token_command: {name!r} exited with status "
                f"{process.returncode}{detail}"
            )
        token = stdout.decode("utf-8", "replace").strip()
        if not token:
            raise TokenError(f"sasl_oauth_token_command: {name!r} printed no token")
        return token

    return run_command


def file_token_source(path: Path) -> TokenSource:
    """A source that reads the token from ``path`` on every fetch (rotated files work)."""

    async def read_file() -> str:
        try:
            return read_secret_file(path, key="sasl_oauth_token_file").reveal().strip()
        except ConfigError as exc:
            raise TokenError(str(exc)) from None

    return read_file
