"""The producer's settings rules: one acks rule, one identity check, each naming the field."""

from __future__ import annotations

import pytest

from gapwatch.producer import ProducerConfigError, ReportConfig, StampedProducer, Stamper
from gapwatch.producer.config import acks_label, aiokafka_acks, default_acks_label
from gapwatch.producer.identity import resolve_identity
from gapwatch.producer.loadgen import LoadgenConfig


class TestAcksRule:
    @pytest.mark.parametrize(
        ("acks", "label"),
        [(0, "0"), ("0", "0"), (1, "1"), ("1", "1"), (-1, "all"), ("-1", "all"), ("all", "all")],
    )
    def test_accepted_values_and_their_labels(self, acks: int | str, label: str) -> None:
        """0, 1, -1, 'all' and the text forms of the numbers are accepted and labelled."""
        assert acks_label(acks) == label

    @pytest.mark.parametrize("acks", ["ALL", "some", 2, -2, "", None, [1]])
    def test_other_values_are_refused_naming_acks(self, acks: object) -> None:
        """Anything else raises ProducerConfigError for the field acks."""
        with pytest.raises(ProducerConfigError) as info:
            acks_label(acks)
        assert info.value.field == "acks"

    def test_aiokafka_gets_its_own_spelling(self) -> None:
        """Text forms become the values AIOKafkaProducer accepts."""
        assert [aiokafka_acks(a) for a in ("0", "1", "-1", -1, "all")] == [
            0,
            1,
            "all",
            "all",
            "all",
        ]

    def test_default_follows_aiokafka(self) -> None:
        """Without acks, aiokafka uses all with idempotence, else 1."""
        assert default_acks_label(idempotent=True) == "all"
        assert default_acks_label(idempotent=False) == "1"

    def test_every_user_of_acks_applies_the_same_rule(self) -> None:
        """Stamper, ReportConfig and the load generator refuse the same bad value alike."""
        for make in (
            lambda: Stamper(acks="most", registry=None),
            lambda: ReportConfig(acks="most").validate(),
            lambda: LoadgenConfig(bootstrap_servers="x", acks="most").validate(),
        ):
            with pytest.raises(ProducerConfigError) as info:
                make()
            assert info.value.field == "acks"

    def test_report_config_accepts_the_text_forms(self) -> None:
        """A text acks is valid for the report publisher too (given to aiokafka as 1)."""
        assert ReportConfig(acks="1").validate().acks == "1"


class TestIdentity:
    def test_defaults_are_valid(self) -> None:
        """Without arguments: '<host>/<pid>' and a fresh epoch."""
        producer_id, epoch = resolve_identity(None, None)
        assert "/" in producer_id
        assert epoch > 0

    @pytest.mark.parametrize(
        ("producer_id", "epoch", "field"),
        [
            ("", 1, "producer_id"),
            ("x" * 129, 1, "producer_id"),
            ("a\nb", 1, "producer_id"),
            ("p", -1, "epoch"),
            ("p", 2**64, "epoch"),
        ],
    )
    def test_bad_values_name_the_field(self, producer_id: str, epoch: int, field: str) -> None:
        """A value the wire format refuses is a ProducerConfigError naming the field."""
        with pytest.raises(ProducerConfigError) as info:
            resolve_identity(producer_id, epoch)
        assert info.value.field == field

    def test_both_producers_check_identity_alike(self) -> None:
        """StampedProducer and Stamper raise the same error for the same bad identity."""
        for make in (
            lambda: Stamper(producer_id="", registry=None),
            lambda: StampedProducer(producer_id="", reports=None, registry=None),
        ):
            with pytest.raises(ProducerConfigError) as info:
                make()
            assert info.value.field == "producer_id"
