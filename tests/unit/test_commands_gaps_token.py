"""``gapwatch gaps`` finds the monitor's bearer token in a flag, a file or the environment."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gapwatch.commands.gaps import bearer_token
from gapwatch.errors import ConfigError

TOKEN = "from-a-file-0123456789"


def flags(token: str | None = None, token_file: Path | None = None) -> argparse.Namespace:
    return argparse.Namespace(
        token=token, token_file=None if token_file is None else str(token_file)
    )


class TestBearerToken:
    def test_file_flag_reads_the_token_without_its_newline(self, tmp_path: Path) -> None:
        """--token-file gives the file's content, the trailing newline dropped."""
        path = tmp_path / "token"
        path.write_text(TOKEN + "\n")
        assert bearer_token(flags(token_file=path), {}) == TOKEN

    def test_flags_beat_the_environment(self, tmp_path: Path) -> None:
        """A flag (value or file) beats both environment variables; the environment giving
        both a token and a token file is refused, as in the monitor's configuration."""
        path = tmp_path / "token"
        path.write_text(TOKEN)
        env = {"GAPWATCH_HTTP_TOKEN": "env-token-0123456789", "GAPWATCH_HTTP_TOKEN_FILE": "x"}
        assert bearer_token(flags(token_file=path), env) == TOKEN
        with pytest.raises(ConfigError, match="not both"):
            bearer_token(flags(), env)
        assert bearer_token(flags(), {"GAPWATCH_HTTP_TOKEN": "env-token-0123456789"}) == (
            "env-token-0123456789"
        )
        assert bearer_token(flags(), {"GAPWATCH_HTTP_TOKEN_FILE": str(path)}) == TOKEN
        assert bearer_token(flags(), {}) is None
