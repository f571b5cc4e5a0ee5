"""OAUTHBEARER token providers: JWT expiry, caching and refresh on a fake clock, sources."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import shlex
import sys
from pathlib import Path

import pytest
from aiokafka.abc import AbstractTokenProvider
from aiokafka.errors import KafkaConnectionError

from gapwatch.errors import ConfigError
from gapwatch.kafka.oauth import (
    CachingTokenProvider,
    CallableTokenProvider,
    TokenError,
    command_token_source,
    file_token_source,
    jwt_expiry,
)


def unsigned_jwt(claims: dict[str, object]) -> str:
    """A JWT with ``alg: none``, as Kafka's unsecured validator accepts."""

    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}."


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ScriptedSource:
    """Hands out the given tokens in order (an exception is raised instead); counts calls."""

    def __init__(self, *results: str | Exception) -> None:
        self.results = list(results)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result


def python_command(code: str) -> str:
    return shlex.join([sys.executable, "-c", code])


class TestJwtExpiry:
    def test_exp_claim_is_read_without_a_signature(self) -> None:
        """An unsigned JWT's exp is its expiry."""
        assert jwt_expiry(unsigned_jwt({"sub": "mon", "exp": 1_700_000_000})) == 1_700_000_000.0

    @pytest.mark.parametrize(
        "token",
        [
            "opaque-token",
            "a.b.c",
            "eyJhbGciOiJub25lIn0.bm90IGpzb24.",
            unsigned_jwt({"sub": "mon"}),
            unsigned_jwt({"exp": "tomorrow"}),
            unsigned_jwt({"exp": True}),
        ],
    )
    def test_tokens_without_a_usable_exp_have_none(self, token: str) -> None:
        """Opaque tokens, broken payloads and non-numeric exp give None (lifetime applies)."""
        assert jwt_expiry(token) is None


class TestCachingTokenProvider:
    async def test_token_is_reused_until_its_refresh_time(self) -> None:
        """Rule 1: one fetch serves every call before 80% of its lifetime (rule 3)."""
        clock = FakeClock(1000.0)
        source = ScriptedSource("first", "second")
        provider = CachingTokenProvider(source, lifetime=100.0, describe="test", clock=clock)
        assert await provider.token() == "first"
        clock.now = 1079.9
        assert await provider.token() == "first"
        assert source.calls == 1
        clock.now = 1080.0
        assert await provider.token() == "second"
        assert source.calls == 2

    async def test_jwt_exp_decides_the_refresh_time(self) -> None:
        """Rule 2: a JWT's exp wins over the configured lifetime."""
        clock = FakeClock(1000.0)
        source = ScriptedSource(unsigned_jwt({"exp": 1010}), "next")
        provider = CachingTokenProvider(source, lifetime=3600.0, describe="test", clock=clock)
        await provider.token()
        assert provider.expires_at == 1010.0
        assert provider.refresh_at == 1008.0
        clock.now = 1008.0
        assert await provider.token() == "next"

    async def test_failed_refresh_keeps_an_unexpired_token(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Rule 4: a refresh failure before expiry is logged and the cached token used."""
        clock = FakeClock(1000.0)
        source = ScriptedSource("first", TokenError("IdP down"), TokenError("IdP down"))
        provider = CachingTokenProvider(source, lifetime=100.0, describe="test", clock=clock)
        await provider.token()
        clock.now = 1090.0
        with caplog.at_level(logging.WARNING):
            assert await provider.token() == "first"
        assert "IdP down" in caplog.text
        assert "first" not in caplog.text
        clock.now = 1100.0
        with pytest.raises(TokenError, match="IdP down"):
            await provider.token()

    async def test_concurrent_callers_share_one_fetch(self) -> None:
        """Connections authenticating together wait for one fetch instead of each running one."""
        gate = asyncio.Event()
        calls = 0

        async def slow_source() -> str:
            nonlocal calls
            calls += 1
            await gate.wait()
            return "shared"

        provider = CachingTokenProvider(slow_source, lifetime=100.0, describe="test")
        waiting = [asyncio.create_task(provider.token()) for _ in range(5)]
        await asyncio.sleep(0)
        gate.set()
        assert await asyncio.gather(*waiting) == ["shared"] * 5
        assert calls == 1

    async def test_first_failure_is_raised(self) -> None:
        """With no token cached, a failure reaches the caller."""
        provider = CachingTokenProvider(
            ScriptedSource(TokenError("no")), lifetime=10.0, describe="test"
        )
        with pytest.raises(TokenError):
            await provider.token()

    async def test_expired_jwt_is_fetched_again_next_time(self) -> None:
        """A token already past its exp is handed out once, then replaced."""
        clock = FakeClock(1000.0)
        source = ScriptedSource(unsigned_jwt({"exp": 900}), "fresh")
        provider = CachingTokenProvider(source, lifetime=100.0, describe="test", clock=clock)
        await provider.token()
        assert await provider.token() == "fresh"

    def test_token_error_is_a_retriable_connection_error(self) -> None:
        """aiokafka treats a token failure as a failed connection: logged, retried."""
        error = TokenError("IdP down")
        assert isinstance(error, KafkaConnectionError)
        assert error.retriable

    def test_is_an_aiokafka_token_provider(self) -> None:
        """aiokafka accepts only AbstractTokenProvider instances."""
        provider = CachingTokenProvider(ScriptedSource(), lifetime=1.0, describe="test")
        assert isinstance(provider, AbstractTokenProvider)
        with pytest.raises(ValueError, match="lifetime"):
            CachingTokenProvider(ScriptedSource(), lifetime=0.0, describe="test")


class TestCallableTokenProvider:
    async def test_sync_and_async_callables_are_asked_every_time(self) -> None:
        """The library's callable owns freshness: it is called on every authentication."""
        calls: list[int] = []

        def sync_token() -> str:
            calls.append(1)
            return f"tok-{len(calls)}\n"

        async def async_token() -> str:
            return "async-tok"

        provider = CallableTokenProvider(sync_token)
        assert await provider.token() == "tok-1"
        assert await provider.token() == "tok-2"
        assert await CallableTokenProvider(async_token).token() == "async-tok"
        assert isinstance(provider, AbstractTokenProvider)

    async def test_non_string_result_is_a_token_error(self) -> None:
        """A callable returning nothing usable fails clearly."""
        with pytest.raises(TokenError, match="returned no token"):
            await CallableTokenProvider(lambda: None).token()  # type: ignore[arg-type, return-value]
        with pytest.raises(TypeError):
            CallableTokenProvider("not callable")  # type: ignore[arg-type]


class TestCommandSource:
    async def test_stdout_is_the_token(self) -> None:
        """The command's standard output, stripped, is the token."""
        source = command_token_source(python_command("print('  the-token  ')"))
        assert await source() == "the-token"

    async def test_command_runs_again_on_each_refresh(self, tmp_path: Path) -> None:
        """Cached by the provider, the command runs once per refresh, not per call."""
        counter = tmp_path / "runs"
        code = (
            f"import pathlib; p = pathlib.Path({str(counter)!r}); "
            "n = int(p.read_text()) + 1 if p.exists() else 1; "
            "p.write_text(str(n)); print(f'token-{n}')"
        )
        clock = FakeClock(0.0)
        provider = CachingTokenProvider(
            command_token_source(python_command(code)), lifetime=10.0, describe="cmd", clock=clock
        )
        assert [await provider.token() for _ in range(3)] == ["token-1"] * 3
        clock.now = 8.0
        assert await provider.token() == "token-2"
        assert counter.read_text() == "2"

    async def test_failing_command_names_status_and_stderr_not_stdout(self) -> None:
        """A non-zero exit names the status and stderr's last line; stdout is never shown."""
        code = "import sys; print('maybe-a-token'); sys.stderr.write('not logged in\\n'); exit(3)"
        with pytest.raises(TokenError) as caught:
            await command_token_source(python_command(code))()
        assert "exited with status 3: not logged in" in str(caught.value)
        assert "maybe-a-token" not in str(caught.value)

    async def test_missing_program_and_empty_output_are_token_errors(self) -> None:
        """A program that does not exist, or prints nothing, fails clearly."""
        with pytest.raises(TokenError, match="cannot run 'gapwatch-no-such-program'"):
            await command_token_source("gapwatch-no-such-program --x")()
        with pytest.raises(TokenError, match="printed no token"):
            await command_token_source(python_command("pass"))()

    async def test_slow_command_is_killed_at_the_timeout(self) -> None:
        """A hung command does not hang the client."""
        source = command_token_source(python_command("import time; time.sleep(30)"), timeout=0.3)
        with pytest.raises(TokenError, match=r"no token within 0\.3 s"):
            await source()

    def test_empty_command_is_a_config_error(self) -> None:
        """An empty command is refused when the source is built."""
        with pytest.raises(ConfigError, match="sasl_oauth_token_command"):
            command_token_source("  ")


class TestFileSource:
    async def test_file_is_read_again_on_each_fetch(self, tmp_path: Path) -> None:
        """A token file rotated by another process is picked up at the next refresh."""
        path = tmp_path / "token"
        path.write_text("one\n")
        source = file_token_source(path)
        assert await source() == "one"
        path.write_text("two\n")
        assert await source() == "two"

    async def test_missing_file_is_a_token_error(self, tmp_path: Path) -> None:
        """A missing file fails with the key and path."""
        with pytest.raises(TokenError, match="sasl_oauth_token_file: cannot read"):
            await file_token_source(tmp_path / "gone")()
