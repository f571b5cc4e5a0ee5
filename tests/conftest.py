"""Shared test configuration: the real-Kafka fixtures from gapwatch.testing."""

# pytester runs small pytest sessions in-process to check the plugin's own behaviour.
pytest_plugins = ["gapwatch.testing.pytest_plugin", "pytester"]
