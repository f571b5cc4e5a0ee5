"""The ACL rules of a monitor and a producer, the missing-ACL line, the printed forms of
``gapwatch acls`` and the Metadata v8 request it and the monitor's start check send."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest
import yaml

from gapwatch.cli import build_parser, main
from gapwatch.commands.acl_forms import kafka_acls_commands, strimzi_kafka_user
from gapwatch.commands.acls import role_acls
from gapwatch.kafka.acl_requests import MetadataV8Request, MetadataV8Response
from gapwatch.kafka.acls import (
    Acl,
    MirrorSourceAccess,
    MonitorAccess,
    Operation,
    PatternType,
    ProducerAccess,
    ResourceType,
    denied_line,
    first_missing,
    is_granted,
    mirror_source_acls,
    monitor_acls,
    principal_of,
    producer_acls,
)
from gapwatch.kafka.settings import SecuritySettings

MON = "User:mon"


def monitor(**changes: object) -> MonitorAccess:
    """A monitor of topic ``orders`` in group ``g`` with gapwatch's default topic names."""
    values: dict[str, object] = {
        "principal": MON,
        "group_id": "g",
        "checkpoint_topic": "cp",
        "gap_log_topic": "gaps",
        "report_topic": "reports",
        "topics": ("orders",),
    }
    values.update(changes)
    return MonitorAccess(**values)  # type: ignore[arg-type]


def topic(name: str, operation: Operation, pattern: PatternType = PatternType.LITERAL) -> Acl:
    return Acl(MON, ResourceType.TOPIC, name, operation, pattern)


class TestMonitorAcls:
    def test_lists_each_rule_in_order_and_nothing_else(self) -> None:
        """Watched topic read and configs, group read, checkpoint and gap log read/write,
        report read: no CREATE, no cluster ACL."""
        assert monitor_acls(monitor()) == [
            topic("orders", Operation.READ),
            topic("orders", Operation.DESCRIBE_CONFIGS),
            Acl(MON, ResourceType.GROUP, "g", Operation.READ),
            topic("cp", Operation.READ),
            topic("cp", Operation.WRITE),
            topic("gaps", Operation.READ),
            topic("gaps", Operation.WRITE),
            topic("reports", Operation.READ),
        ]

    def test_create_is_granted_on_the_owned_topics_only_when_asked(self) -> None:
        """--allow-create adds CREATE on the checkpoint, gap log and report topics."""
        extra = monitor_acls(monitor(allow_create=True))[len(monitor_acls(monitor())) :]
        assert extra == [
            topic("cp", Operation.CREATE),
            topic("gaps", Operation.CREATE),
            topic("reports", Operation.CREATE),
        ]

    def test_a_pattern_is_a_prefixed_read(self) -> None:
        """A topic pattern grants READ on the prefix, and DESCRIBE_CONFIGS for the
        durability audit of the topics it matches."""
        acls = monitor_acls(monitor(topics=(), topic_prefixes=("app-",)))
        assert acls[0] == topic("app-", Operation.READ, PatternType.PREFIXED)
        assert acls[1] == topic("app-", Operation.DESCRIBE_CONFIGS, PatternType.PREFIXED)
        described = [a for a in acls if a.operation is Operation.DESCRIBE_CONFIGS]
        assert described == [acls[1]]

    def test_without_reports_the_report_topic_is_not_named(self) -> None:
        """A monitor that reads no reports needs nothing on the report topic."""
        acls = monitor_acls(monitor(report_topic=None, allow_create=True))
        assert all(a.resource_name != "reports" for a in acls)

    def test_a_topic_named_twice_gets_each_acl_once(self) -> None:
        """Watching the gap log topic itself does not repeat its READ."""
        acls = monitor_acls(monitor(topics=("gaps",)))
        assert len(acls) == len(set(acls))


class TestProducerAcls:
    def test_writes_its_topics_and_the_report_topic(self) -> None:
        """WRITE only (it implies DESCRIBE); CREATE on the report topic only when asked."""
        access = ProducerAccess(principal=MON, report_topic="reports", topics=("orders",))
        assert producer_acls(access) == [
            topic("orders", Operation.WRITE),
            topic("reports", Operation.WRITE),
        ]
        creating = ProducerAccess(
            principal=MON, report_topic="reports", topic_prefixes=("app-",), allow_create=True
        )
        assert producer_acls(creating) == [
            topic("app-", Operation.WRITE, PatternType.PREFIXED),
            topic("reports", Operation.WRITE),
            topic("reports", Operation.CREATE),
        ]


class TestMirrorSourceAcls:
    def test_reads_the_source_topics_and_nothing_else(self) -> None:
        """READ only (it implies DESCRIBE): no group (the source readers have none), no
        write, no create, nothing on the cluster."""
        access = MirrorSourceAccess(
            principal=MON, topics=("orders", "orders"), topic_prefixes=("app-",)
        )
        assert mirror_source_acls(access) == [
            topic("orders", Operation.READ),
            topic("app-", Operation.READ, PatternType.PREFIXED),
        ]

    def test_the_command_prints_them_for_the_source_topics(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--role mirror-source: one kafka-acls.sh command per source topic, Read only."""
        argv = ["acls", "--principal", MON, "--role", "mirror-source", "--topic", "orders"]
        assert main([*argv, "--format", "kafka-acls"]) == 0
        out = capsys.readouterr().out
        assert out.count("--add") == 1
        assert "--operation Read" in out
        assert "--topic orders" in out
        assert "--group" not in out
        assert "Write" not in out

    def test_allow_create_is_refused(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Nothing of gapwatch's lives on the source: --allow-create is an error, exit 2."""
        argv = ["--principal", MON, "--role", "mirror-source", "--topic", "t", "--allow-create"]
        assert main(["acls", *argv]) == 2
        assert "creates nothing on the source" in capsys.readouterr().err


class TestDeniedLine:
    def test_names_permission_resource_and_principal(self) -> None:
        """The line of the issue's example."""
        acl = Acl(MON, ResourceType.GROUP, "G", Operation.READ)
        assert (
            denied_line(acl) == "not authorized to read GROUP G: grant READ on GROUP G to User:mon"
        )

    def test_describe_configs_and_prefixes_read_naturally(self) -> None:
        """DESCRIBE_CONFIGS and a PREFIXED resource say what they are."""
        assert denied_line(topic("t", Operation.DESCRIBE_CONFIGS)) == (
            "not authorized to describe the configs of TOPIC t: "
            "grant DESCRIBE_CONFIGS on TOPIC t to User:mon"
        )
        assert "TOPIC prefix app-" in denied_line(
            topic("app-", Operation.READ, PatternType.PREFIXED)
        )

    def test_is_granted_reads_kafkas_operation_bits(self) -> None:
        """Bit ``1 << code``: READ (3) and DESCRIBE (8) set, WRITE (4) not."""
        bits = (1 << 3) | (1 << 8)
        assert is_granted(topic("t", Operation.READ), bits)
        assert not is_granted(topic("t", Operation.WRITE), bits)


class TestPrincipalOf:
    def test_sasl_user_certificate_or_anonymous(self, tmp_path: Path) -> None:
        """SASL names the user; a client certificate points at its subject; else ANONYMOUS."""
        sasl = SecuritySettings(
            security_protocol="SASL_SSL", sasl_username="mon", sasl_password="x"
        )
        assert principal_of(sasl) == "User:mon"
        cert = SecuritySettings(
            security_protocol="SSL", ssl_certfile=tmp_path / "c.pem", ssl_keyfile=tmp_path / "k"
        )
        assert str(tmp_path / "c.pem") in principal_of(cert)
        assert principal_of(SecuritySettings()) == "User:ANONYMOUS"


def parsed(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["acls", *argv])


class TestPrintedForms:
    def test_kafka_acls_commands_group_operations_per_resource(self) -> None:
        """One kafka-acls.sh --add per resource, all its operations, the pattern type."""
        text = kafka_acls_commands(
            monitor_acls(monitor(topic_prefixes=("app-",))), bootstrap="k:9092"
        )
        commands = text.split("kafka-acls.sh \\")[1:]
        assert len(commands) == 6  # orders, app-, g, cp, gaps, reports
        assert "--operation Read \\\n    --operation DescribeConfigs \\\n    --topic orders" in text
        assert "--topic app- \\\n    --resource-pattern-type prefixed" in text
        assert "--group g" in text
        assert text.count("--bootstrap-server k:9092") == 6

    def test_strimzi_user_is_a_simple_authorization_kafka_user(self) -> None:
        """apiVersion v1beta2, the cluster label, every ACL under spec.authorization.acls."""
        acls = monitor_acls(monitor())
        text = strimzi_kafka_user(
            acls, principal=MON, cluster="prod", authentication="scram-sha-512"
        )
        user = yaml.safe_load(text.split("---\n", 1)[1])
        assert user["apiVersion"] == "kafka.strimzi.io/v1beta2"
        assert user["kind"] == "KafkaUser"
        assert user["metadata"] == {"name": "mon", "labels": {"strimzi.io/cluster": "prod"}}
        assert user["spec"]["authorization"]["type"] == "simple"
        rules = user["spec"]["authorization"]["acls"]
        granted = {
            (r["resource"]["type"], r["resource"]["name"], op)
            for r in rules
            for op in r["operations"]
        }
        assert granted == {
            ("topic", "orders", "Read"),
            ("topic", "orders", "DescribeConfigs"),
            ("group", "g", "Read"),
            ("topic", "cp", "Read"),
            ("topic", "cp", "Write"),
            ("topic", "gaps", "Read"),
            ("topic", "gaps", "Write"),
            ("topic", "reports", "Read"),
        }
        assert all(r["resource"]["patternType"] == "literal" for r in rules)

    def test_role_acls_follow_the_flags(self) -> None:
        """--role producer, --no-reports and --allow-create reach the rules."""
        args = parsed("--principal", MON, "--role", "producer", "--topic", "t", "--no-reports")
        assert role_acls(args) == [topic("t", Operation.WRITE)]
        args = parsed("--principal", MON, "--topic", "t", "--allow-create")
        assert topic("__gapwatch_checkpoints", Operation.CREATE) in role_acls(args)


class TestCommand:
    def test_prints_both_forms_without_a_cluster(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Printing needs no connection; exit 0."""
        assert main(["acls", "--principal", MON, "--topic", "orders"]) == 0
        out = capsys.readouterr().out
        assert "kafka-acls.sh" in out
        assert "kind: KafkaUser" in out

    @pytest.mark.parametrize(
        ("argv", "problem"),
        [
            (["--principal", "mon", "--topic", "t"], "--principal must be TYPE:NAME"),
            (["--principal", MON], "give --topic"),
            (["--principal", MON, "--topic", "t", "--apply"], "--apply needs --bootstrap"),
        ],
    )
    def test_bad_arguments_exit_2_with_one_line(
        self, argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A wrong principal, no topic, or --apply without servers: exit 2, nothing printed."""
        assert main(["acls", *argv]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith("gapwatch acls: " + problem)
        assert captured.err.count("\n") == 1


class TestMetadataV8:
    def test_request_encodes_no_auto_creation_and_topic_operations(self) -> None:
        """topics, allow_auto_topic_creation=False, cluster ops False, topic ops True."""
        encoded = MetadataV8Request(["t"], False, False, True).encode()
        assert encoded == b"\x00\x00\x00\x01\x00\x01t" + b"\x00\x00\x01"

    def test_response_decodes_topic_operations(self) -> None:
        """A response built from the schema reads back with its operations field."""
        response = MetadataV8Response(
            0,
            [(1, "h", 9092, None)],
            "cluster",
            1,
            [(0, "t", False, [(0, 0, 1, 0, [1], [1], [])], 0x128)],
            -(2**31),
        )
        decoded = MetadataV8Response.decode(io.BytesIO(response.encode()))
        assert decoded.topics[0][1] == "t"
        assert decoded.topics[0][4] == 0x128


class TestFirstMissing:
    """The start-up check's decision, from the cluster's answers (no Kafka)."""

    ALL = (1 << 3) | (1 << 4) | (1 << 8) | (1 << 10)  # READ, WRITE, DESCRIBE, DESCRIBE_CONFIGS

    def answers(self, **topics: int | None) -> dict[str, int | None]:
        base: dict[str, int | None] = dict.fromkeys(("orders", "cp", "gaps", "reports"), self.ALL)
        base.update(topics)
        return base

    def test_nothing_missing_when_everything_is_granted(self) -> None:
        """All bits set: None."""
        acls = monitor_acls(monitor())
        assert first_missing(acls, topic_ops=self.answers(), group_ops={"g": self.ALL}) is None

    def test_names_the_one_operation_missing(self) -> None:
        """Checkpoint topic writable but not readable: READ on it is named."""
        write_only = (1 << 4) | (1 << 8)
        acls = monitor_acls(monitor())
        missing = first_missing(
            acls, topic_ops=self.answers(cp=write_only), group_ops={"g": self.ALL}
        )
        assert missing == topic("cp", Operation.READ)

    def test_an_undescribable_resource_lacks_its_first_acl(self) -> None:
        """0 for the group (not even DESCRIBE): READ on the group is named."""
        acls = monitor_acls(monitor())
        missing = first_missing(acls, topic_ops=self.answers(), group_ops={"g": 0})
        assert missing == Acl(MON, ResourceType.GROUP, "g", Operation.READ)

    def test_missing_topics_and_prefixes_are_not_checked(self) -> None:
        """A topic that does not exist yet and a PREFIXED ACL pass the check."""
        acls = monitor_acls(monitor(topic_prefixes=("app-",)))
        missing = first_missing(acls, topic_ops=self.answers(gaps=None), group_ops={"g": self.ALL})
        assert missing is None
