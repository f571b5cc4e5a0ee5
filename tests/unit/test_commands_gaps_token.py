"""``gapwatch gaps`` finds the monitor's bearer token in a flag, a file or the environment."""

from __future__ import annotations

import argparse
from pathlib import Path

from gapwatch.commands.gaps import read_token

TOKEN = "from-a-file-0123456789"


def flags(token: str | None = None, token_file: Path | None = None) -> argparse.Namespace:
    return argparse.Namespace(
        token=token, token_file=None if token_file is None else str(token_file)
    )


class TestReadToken:
    def test_file_flag_reads_the_token_without_its_newline(self, tmp_path: Path) -> None:
        """--token-file gives the file's content, the trailing newline dropped."""
        path = tmp_path / "token"
        path.write_text(TOKEN + "\n")
        assert read_token(flags(token_file=path), {}) == TOKEN

    def test_flags_beat_the_environment(self, tmp_path: Path) -> None:
        """A flag (value or file) beats both environment variables; then the variable
        GAPWATCH_HTTP_TOKEN beats GAPWATCH_HTTP_TOKEN_FILE."""
        path = tmp_path / "token"
        path.write_text(TOKEN)
        env = {"GAPWATCH_HTTP_TOKEN": "env-token-0123456789", "GAPWATCH_HTTP_TOKEN_FILE": "x"}
        assert read_token(flags(token_file=path), env) == TOKEN
        assert read_token(flags(), env) == "env-token-0123456789"
        assert read_token(flags(), {"GAPWATCH_HTTP_TOKEN_FILE": str(path)}) == TOKEN
        assert read_token(flags(), {}) is None
