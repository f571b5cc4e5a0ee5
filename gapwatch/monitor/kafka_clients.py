"""The keyword arguments every aiokafka client of the monitor shares (servers, security).

The consumer, the checkpoint producer, the report reader, the admin client and
``gapwatch audit`` all connect the same way; building the arguments in one place keeps
SSL/SASL handling identical across them.
"""

from __future__ import annotations

from typing import Any

from aiokafka.helpers import create_ssl_context

from gapwatch.monitor.config import KafkaSettings


def client_kwargs(kafka: KafkaSettings, *, suffix: str = "") -> dict[str, Any]:
    """aiokafka constructor arguments for connecting with ``kafka``'s servers and security.

    ``suffix`` is appended to the client id so broker logs and quotas can tell the
    monitor's clients apart (``gapwatch-monitor-checkpoints``...).
    """
    security = kafka.security
    kwargs: dict[str, Any] = {
        "bootstrap_servers": list(kafka.bootstrap_servers),
        "client_id": kafka.client_id + suffix,
        "security_protocol": security.security_protocol,
    }
    if security.uses_ssl:
        context = create_ssl_context(
            cafile=security.ssl_cafile,
            certfile=security.ssl_certfile,
            keyfile=security.ssl_keyfile,
            password=security.ssl_key_password,
        )
        # create_ssl_context always checks hostnames; the opt-out exists for brokers
        # reached through an address that is not in their certificate (port-forwards).
        context.check_hostname = security.ssl_check_hostname
        kwargs["ssl_context"] = context
    if security.uses_sasl:
        kwargs["sasl_mechanism"] = security.sasl_mechanism
        kwargs["sasl_plain_username"] = security.sasl_username
        kwargs["sasl_plain_password"] = security.sasl_password
    return kwargs
