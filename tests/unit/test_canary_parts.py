"""The canary's adapters without Kafka: its ACLs, the ElectLeaders wire format, its
metrics on a fresh registry, the standalone command's options."""

from __future__ import annotations

import io

import pytest
from prometheus_client import CollectorRegistry

from gapwatch.cli import main
from gapwatch.commands.acl_forms import kafka_acls_commands, strimzi_kafka_user
from gapwatch.core.config import TrackerConfig
from gapwatch.kafka.acls import (
    CLUSTER_NAME,
    Acl,
    CanaryAccess,
    Operation,
    ResourceType,
    canary_acls,
    denied_line,
)
from gapwatch.kafka.canary.leadership import (
    ELECT_PREFERRED,
    ElectLeadersV1Request,
    ElectLeadersV1Response,
    PreferredLeaderRequest,
)
from gapwatch.kafka.canary.metrics import CanaryCollector
from gapwatch.kafka.canary.runner import Canary, canary_topic_configs
from gapwatch.kafka.canary.settings import CanarySettings
from gapwatch.monitor.state.partitions import OwnedPartitions

WHO = "User:canary"


class TestCanaryAcls:
    def test_writes_alters_its_topic_and_alters_the_cluster(self) -> None:
        """WRITE, ALTER and ALTER_CONFIGS on the canary topic, ALTER on the cluster;
        CREATE only if asked."""
        acls = canary_acls(CanaryAccess(principal=WHO, topic="__gapwatch_canary"))
        assert acls == [
            Acl(WHO, ResourceType.TOPIC, "__gapwatch_canary", Operation.WRITE),
            Acl(WHO, ResourceType.TOPIC, "__gapwatch_canary", Operation.ALTER),
            Acl(WHO, ResourceType.TOPIC, "__gapwatch_canary", Operation.ALTER_CONFIGS),
            Acl(WHO, ResourceType.CLUSTER, CLUSTER_NAME, Operation.ALTER),
        ]
        with_create = canary_acls(CanaryAccess(principal=WHO, topic="c", allow_create=True))
        assert with_create[-1] == Acl(WHO, ResourceType.TOPIC, "c", Operation.CREATE)

    def test_printed_forms_name_alter_and_the_cluster(self) -> None:
        """kafka-acls.sh gets --operation Alter --cluster; Strimzi a cluster resource."""
        acls = canary_acls(CanaryAccess(principal=WHO, topic="__gapwatch_canary"))
        commands = kafka_acls_commands(acls, bootstrap="k:9092")
        assert "--operation Alter \\\n    --operation AlterConfigs" in commands
        assert "--operation Alter \\\n    --cluster" in commands
        user = strimzi_kafka_user(acls, principal=WHO, cluster="c", authentication="tls")
        assert "type: cluster" in user
        assert denied_line(acls[3]) == (
            "not authorized to alter CLUSTER kafka-cluster: "
            "grant ALTER on CLUSTER kafka-cluster to User:canary"
        )

    def test_role_canary_needs_no_topic_flag(self, capsys: pytest.CaptureFixture[str]) -> None:
        """gapwatch acls --role canary prints the canary's ACLs for its default topic."""
        assert main(["acls", "--principal", WHO, "--role", "canary", "--format", "kafka-acls"]) == 0
        out = capsys.readouterr().out
        assert "--topic __gapwatch_canary" in out
        assert "--cluster" in out


class TestElectLeadersWire:
    def test_request_v1_encodes_preferred_election_of_the_partitions(self) -> None:
        """election_type 0, one topic with its partitions, then the timeout (Kafka's
        ElectLeadersRequest.json, version 1)."""
        request = PreferredLeaderRequest("t", [0, 2]).build(ElectLeadersV1Request)
        encoded = request.encode()
        assert encoded[:1] == bytes([ELECT_PREFERRED])
        assert encoded[1:] == (
            b"\x00\x00\x00\x01"  # one topic
            b"\x00\x01t"  # its name
            b"\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x02"  # partitions 0 and 2
            b"\x00\x00\x13\x88"  # timeout 5000 ms
        )
        assert (ElectLeadersV1Request.API_KEY, ElectLeadersV1Request.API_VERSION) == (43, 1)

    def test_response_v1_decodes_per_partition_results(self) -> None:
        """A response built from the schema reads back: error codes and nullable messages."""
        response = ElectLeadersV1Response(0, 0, [("t", [(0, 0, None), (2, 80, "not in isr")])])
        decoded = ElectLeadersV1Response.decode(io.BytesIO(response.encode()))
        assert decoded.error_code == 0
        assert decoded.replica_election_results == [("t", [(0, 0, None), (2, 80, "not in isr")])]


class TestCanaryMetrics:
    def test_a_canary_not_started_exports_its_families_without_series(self) -> None:
        """Built (no connection), the collector yields every family, empty of brokers."""
        canary = Canary(CanarySettings(enabled=True), client_kwargs={"bootstrap_servers": []})
        registry = CollectorRegistry()
        registry.register(CanaryCollector(canary, end_to_end=dict))
        names = {family.name for family in registry.collect()}
        assert {
            "gapwatch_canary_broker_available",
            "gapwatch_canary_writes",
            "gapwatch_canary_write_failures",
            "gapwatch_canary_write_latency_seconds",
            "gapwatch_canary_end_to_end_latency_seconds",
            "gapwatch_canary_leader_elections",
        } <= names
        assert registry.get_sample_value("gapwatch_canary_leader_elections_total") == 0.0

    def test_counts_appear_per_broker(self) -> None:
        """Writes and failures booked through the stats show under their broker."""
        canary = Canary(CanarySettings(enabled=True), client_kwargs={"bootstrap_servers": []})
        canary.stats.succeeded(2, 0.004)
        canary.stats.succeeded(2, 0.3)
        canary.stats.failed(3)
        registry = CollectorRegistry()
        registry.register(CanaryCollector(canary))
        value = registry.get_sample_value
        assert value("gapwatch_canary_writes_total", {"broker": "2"}) == 2.0
        assert value("gapwatch_canary_write_failures_total", {"broker": "3"}) == 1.0
        assert (
            value("gapwatch_canary_write_latency_seconds_bucket", {"broker": "2", "le": "0.005"})
            == 1.0
        )
        assert value("gapwatch_canary_write_latency_seconds_count", {"broker": "2"}) == 2.0


class TestCanaryTopic:
    def test_min_isr_is_two_or_one_on_a_single_broker(self) -> None:
        """The created topic's settings follow the cluster size; deletion, not compaction."""
        assert canary_topic_configs(3)["min.insync.replicas"] == "2"
        assert canary_topic_configs(1)["min.insync.replicas"] == "1"
        assert canary_topic_configs(3)["cleanup.policy"] == "delete"


class TestCanaryCommand:
    def test_bad_option_exits_2_naming_it(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A rate out of range: exit 2 with the key, before any connection."""
        assert main(["canary", "--rate", "0"]) == 2
        assert "canary_rate" in capsys.readouterr().err


class TestCanaryLatencyPerPartition:
    def test_canary_partitions_have_their_own_histograms_summed_per_topic(self) -> None:
        """Each canary partition (one per broker) gets its own latency histogram, kept
        when the partition is owned again; the topic's histogram is their sum, and other
        topics stay per topic."""
        owned = OwnedPartitions(TrackerConfig(), latency_per_partition=("c",))
        owned.add("c", 0).latency.observe(0.004)
        owned.add("c", 1).latency.observe(0.2)
        owned.add("c", 1).latency.observe(0.3)
        assert owned.add("t", 0).latency is owned.add("t", 1).latency
        by_partition = owned.latency_by_partition("c")
        assert {p: h.cumulative()[-1][1] for p, h in by_partition.items()} == {0: 1.0, 1: 2.0}
        by_topic = dict(owned.latency_by_topic())
        assert by_topic["c"].cumulative()[-1][1] == 3.0
        assert by_topic["c"].total == pytest.approx(0.504)
        assert owned.latency_by_partition("t") == {}
