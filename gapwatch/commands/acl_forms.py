"""The printed forms of a list of ACLs: ``kafka-acls.sh`` commands and a Strimzi
``KafkaUser`` resource (``gapwatch acls``)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any, Final

from gapwatch.kafka.acls import Acl, Operation, PatternType

STRIMZI_API_VERSION: Final = "kafka.strimzi.io/v1beta2"
# How kafka-acls.sh and Strimzi spell each operation.
_OPERATION_NAMES: Final = {
    Operation.READ: "Read",
    Operation.WRITE: "Write",
    Operation.CREATE: "Create",
    Operation.DESCRIBE: "Describe",
    Operation.ALTER: "Alter",
    Operation.DESCRIBE_CONFIGS: "DescribeConfigs",
    Operation.ALTER_CONFIGS: "AlterConfigs",
    Operation.IDEMPOTENT_WRITE: "IdempotentWrite",
}


def kafka_acls_commands(acls: Sequence[Acl], *, bootstrap: str | None) -> str:
    """One ``kafka-acls.sh --add`` command per resource, with all its operations."""
    by_resource: dict[tuple[str, str, str, PatternType], list[str]] = {}
    for acl in acls:
        key = (acl.principal, acl.resource_type.name, acl.resource_name, acl.pattern_type)
        by_resource.setdefault(key, []).append(_OPERATION_NAMES[acl.operation])
    lines = [
        "# kafka-acls.sh, run with an admin's client settings in admin.properties",
    ]
    for (principal, kind, name, pattern), operations in by_resource.items():
        parts = [
            "kafka-acls.sh",
            f"--bootstrap-server {bootstrap or 'BOOTSTRAP'}",
            "--command-config admin.properties",
            "--add",
            f"--allow-principal {_shell_word(principal)}",
            *(f"--operation {operation}" for operation in operations),
        ]
        if kind == "CLUSTER":
            parts.append("--cluster")
        else:
            parts.append(f"--{kind.lower()} {_shell_word(name)}")
        parts.append(f"--resource-pattern-type {pattern.name.lower()}")
        lines.append(" \\\n    ".join(parts))
    return "\n".join(lines) + "\n"


def strimzi_kafka_user(
    acls: Sequence[Acl], *, principal: str, cluster: str, authentication: str
) -> str:
    """A Strimzi ``KafkaUser`` (simple authorization) holding ``acls``, as YAML."""
    import yaml  # only this output needs it

    rules: list[dict[str, Any]] = []
    by_resource: dict[tuple[str, str, PatternType], list[str]] = {}
    for acl in acls:
        key = (acl.resource_type.name, acl.resource_name, acl.pattern_type)
        by_resource.setdefault(key, []).append(_OPERATION_NAMES[acl.operation])
    for (kind, name, pattern), operations in by_resource.items():
        resource: dict[str, str] = {"type": kind.lower()}
        if kind != "CLUSTER":
            resource["name"] = name
            resource["patternType"] = pattern.name.lower()
        rules.append({"resource": resource, "operations": operations, "host": "*"})
    user = {
        "apiVersion": STRIMZI_API_VERSION,
        "kind": "KafkaUser",
        "metadata": {
            # Strimzi makes the principal from this name (User:NAME, or User:CN=NAME for TLS).
            "name": principal.partition(":")[2],
            "labels": {"strimzi.io/cluster": cluster},
        },
        "spec": {
            "authentication": {"type": authentication},
            "authorization": {"type": "simple", "acls": rules},
        },
    }
    body = yaml.safe_dump(user, sort_keys=False, default_flow_style=False)
    return "# Strimzi KafkaUser\n---\n" + body


def _shell_word(text: str) -> str:
    # Principals and names are plain words in practice; quote anything else for the shell.
    return shlex.quote(text)
