"""docs/security.md: every YAML example is a valid monitor configuration, the Python parses."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from gapwatch.monitor.config_sources import FIELDS_BY_KEY, load_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = re.findall(r"```yaml\n(.*?)```", TEXT, re.DOTALL)
PYTHON = re.findall(r"```python\n(.*?)```", TEXT, re.DOTALL)


def test_the_document_has_an_example_per_mode() -> None:
    """Each protocol and mechanism appears in at least one example."""
    text = "\n".join(BLOCKS)
    for value in ("SSL", "SASL_PLAINTEXT", "SASL_SSL", "PLAIN", "SCRAM-SHA-256",
                  "SCRAM-SHA-512", "OAUTHBEARER", "ssl_certfile"):  # fmt: skip
        assert value in text, value


@pytest.mark.parametrize("block", BLOCKS, ids=[f"example-{i}" for i in range(len(BLOCKS))])
def test_example_loads_and_validates(block: str, tmp_path: Path) -> None:
    """The example's keys exist and fit together (its files replaced by real ones)."""
    values = yaml.safe_load(block)
    assert isinstance(values, dict)
    for key, value in values.items():
        assert key in FIELDS_BY_KEY, key
        if FIELDS_BY_KEY[key].kind == "path":
            # The example's paths do not exist here; the CA and client files must be PEM.
            source = Path(__file__).resolve().parents[1] / "data" / "tls"
            name = {"ssl_keyfile": "client.key"}.get(key, "client.pem")
            target = tmp_path / Path(str(value)).name
            text = (source / name).read_text() if key.startswith("ssl_") else "secret\n"
            if key == "ssl_key_password_file":
                text = "unit-test-key-pass\n"
            target.write_text(text)
            values[key] = str(target)
    config_file = tmp_path / "gapwatch.yaml"
    config_file.write_text(yaml.safe_dump({**values, "topic": "orders"}))
    config = load_config({"config": str(config_file)}, {})
    assert config.kafka.bootstrap_servers


def test_python_examples_parse_and_import_what_exists() -> None:
    """The Python examples are valid syntax and import gapwatch names that exist."""
    assert PYTHON
    for block in PYTHON:
        tree = ast.parse(block)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gapwatch"):
                module = __import__(node.module or "", fromlist=["_"])
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{node.module}.{alias.name}"
