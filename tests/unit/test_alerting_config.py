"""Configuration keys of the gap log, /events and the sinks: sources and validation."""

from __future__ import annotations

import pytest

from gapwatch.errors import ConfigError
from gapwatch.monitor.config_sources import load_config

BASE = {"GAPWATCH_BOOTSTRAP_SERVERS": "h:1", "GAPWATCH_TOPIC": "t"}


class TestAlertingConfig:
    def test_environment_sets_sinks_and_defaults_hold(self) -> None:
        """GAPWATCH_ALERTMANAGER_URL takes a comma list; the loss hold defaults to >= 10 min."""
        env = {
            **BASE,
            "GAPWATCH_ALERTMANAGER_URL": "http://am1:9093, http://am2:9093",
            "GAPWATCH_WEBHOOK_URL": "https://hooks.example/x",
            "GAPWATCH_WEBHOOK_SECRET": "s" * 16,
        }
        config = load_config({}, env)
        assert config.alerting.alertmanager_urls == ("http://am1:9093", "http://am2:9093")
        assert config.alerting.webhook_secret == "s" * 16
        assert config.alerting.loss_hold >= 600
        assert config.gap_log.topic == "__gapwatch_gaps"

    def test_flags_override_the_environment(self) -> None:
        """--alert-loss-hold beats GAPWATCH_ALERT_LOSS_HOLD."""
        config = load_config(
            {"alert_loss_hold": "700"}, {**BASE, "GAPWATCH_ALERT_LOSS_HOLD": "1200"}
        )
        assert config.alerting.loss_hold == 700.0

    @pytest.mark.parametrize(
        ("variable", "value", "key"),
        [
            ("GAPWATCH_ALERTMANAGER_URL", "am:9093", "alertmanager_url"),
            ("GAPWATCH_WEBHOOK_EVENTS", "confirmed,exploded", "webhook_events"),
            ("GAPWATCH_WEBHOOK_SECRET", "short", "webhook_secret"),
            ("GAPWATCH_ALERT_MAX_PER_PARTITION", "0", "alert_max_per_partition"),
            ("GAPWATCH_SINK_TIMEOUT", "0", "sink_timeout"),
            ("GAPWATCH_GAP_LOG_TOPIC", "t", "gap_log_topic"),
            ("GAPWATCH_EVENTS_BUFFER", "0", "events_buffer"),
        ],
    )
    def test_bad_values_name_the_key_and_its_source(
        self, variable: str, value: str, key: str
    ) -> None:
        """Each rule names the key and the variable that set it."""
        with pytest.raises(ConfigError) as caught:
            load_config({}, {**BASE, variable: value})
        assert caught.value.key == key
        assert caught.value.source == variable
