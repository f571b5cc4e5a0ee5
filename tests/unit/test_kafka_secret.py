"""Secret masks itself in repr, str, f-strings and errors; SASL stays out of aiokafka's log."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest
from aiokafka.conn import SaslAuthenticateRequest
from aiokafka.protocol.metadata import MetadataRequest

from gapwatch.errors import ConfigError
from gapwatch.kafka.secret import (
    AIOKAFKA_CONNECTION_LOGGER,
    MASK,
    SaslExchangeFilter,
    Secret,
    as_secret,
    hide_sasl_exchanges,
    read_secret_file,
)
from gapwatch.kafka.settings import KafkaSettings, SecuritySettings, client_kwargs


class TestSecret:
    def test_every_text_form_is_the_mask(self) -> None:
        """repr, str and f-strings (with a format spec too) show the mask, never the value."""
        secret = Secret("hunter2")
        for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret:>20}"):
            assert "hunter2" not in text
            assert MASK in text

    def test_reveal_returns_the_value(self) -> None:
        """Only reveal() gives the value back."""
        assert Secret("hunter2").reveal() == "hunter2"

    def test_containers_and_logs_stay_masked(self, caplog: pytest.LogCaptureFixture) -> None:
        """A secret inside a dict or a log record's arguments is still masked."""
        secret = Secret("hunter2")
        with caplog.at_level(logging.INFO):
            logging.getLogger("test").info("settings %s %r", {"password": secret}, [secret])
        assert "hunter2" not in caplog.text
        assert "hunter2" not in repr({"password": secret})

    def test_equality_compares_values(self) -> None:
        """Two secrets of one value are equal (settings compare), others are not."""
        assert Secret("a") == Secret("a")
        assert Secret("a") != Secret("b")
        assert hash(Secret("a")) == hash(Secret("a"))
        assert Secret("a") != "a"

    def test_pickling_is_refused(self) -> None:
        """A secret does not leave the process through pickle."""
        with pytest.raises(TypeError):
            pickle.dumps(Secret("hunter2"))

    def test_only_strings_are_wrapped(self) -> None:
        """Wrapping anything but a str is a programming error."""
        with pytest.raises(TypeError):
            Secret(b"bytes")  # type: ignore[arg-type]

    def test_as_secret_wraps_once(self) -> None:
        """as_secret wraps a str, keeps a Secret and None as they are."""
        existing = Secret("x")
        assert as_secret(existing) is existing
        assert as_secret(None) is None
        assert as_secret("x") == existing


class TestReadSecretFile:
    def test_trailing_newline_is_not_part_of_the_secret(self, tmp_path: Path) -> None:
        """A file written by echo or a secrets mount yields the value without its newline."""
        path = tmp_path / "password"
        path.write_text("s3cret with spaces \n")
        assert read_secret_file(path, key="sasl_password_file").reveal() == "s3cret with spaces "

    def test_file_is_read_again_on_every_call(self, tmp_path: Path) -> None:
        """A rotated file is picked up by the next read."""
        path = tmp_path / "password"
        path.write_text("old\n")
        assert read_secret_file(path, key="k").reveal() == "old"
        path.write_text("new\n")
        assert read_secret_file(path, key="k").reveal() == "new"

    def test_missing_and_empty_files_name_the_key_not_the_content(self, tmp_path: Path) -> None:
        """Errors name the key and the path; an empty file is refused."""
        with pytest.raises(ConfigError, match=r"sasl_password_file: cannot read .*missing"):
            read_secret_file(tmp_path / "missing", key="sasl_password_file")
        empty = tmp_path / "empty"
        empty.write_text("\n")
        with pytest.raises(ConfigError, match=r"sasl_password_file: .* is empty"):
            read_secret_file(empty, key="sasl_password_file")


class TestSaslExchangeFilter:
    def test_sasl_requests_are_masked_in_aiokafkas_debug_log(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """aiokafka logs each request at DEBUG; a SaslAuthenticate request (a PLAIN password
        in clear) is masked, other requests are logged as before."""
        logger = logging.getLogger(AIOKAFKA_CONNECTION_LOGGER)
        hide_sasl_exchanges()
        hide_sasl_exchanges()
        assert sum(isinstance(f, SaslExchangeFilter) for f in logger.filters) == 1
        sasl = SaslAuthenticateRequest(b"\x00admin\x00hunter2").prepare({36: (0, 1)})
        metadata = MetadataRequest([]).prepare({3: (0, 1)})
        with caplog.at_level(logging.DEBUG, logger=AIOKAFKA_CONNECTION_LOGGER):
            # The exact call aiokafka 0.14 makes in AIOKafkaConnection.send().
            logger.debug("Request to %s:%d %d: %s", "h", 9092, 1, sasl)
            logger.debug("Request to %s:%d %d: %s", "h", 9092, 2, metadata)
        assert "hunter2" not in caplog.text
        assert f"SaslAuthenticateRequest_v1({MASK})" in caplog.text
        assert repr(metadata) in caplog.text

    def test_building_sasl_clients_installs_the_filter(self) -> None:
        """Every SASL client gapwatch builds goes through client_kwargs, which installs it."""
        logger = logging.getLogger(AIOKAFKA_CONNECTION_LOGGER)
        for existing in [f for f in logger.filters if isinstance(f, SaslExchangeFilter)]:
            logger.removeFilter(existing)
        security = SecuritySettings(
            security_protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password="p"
        )
        client_kwargs(KafkaSettings(bootstrap_servers=("h:1",), security=security))
        assert any(isinstance(f, SaslExchangeFilter) for f in logger.filters)
