"""The application-facing marking API, without a broker: what counts as processed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaConsumer

from gapwatch.core.config import TrackerConfig
from gapwatch.core.intake import Headers
from gapwatch.core.wire import encode_stamp
from gapwatch.verifier import ConsumerVerifier, VerifierConfig, VerifierError


@dataclass(frozen=True)
class Record:
    """The fields of aiokafka's ConsumerRecord that the verifier reads."""

    offset: int
    topic: str = "orders"
    partition: int = 0
    timestamp: int = 1_000
    headers: Headers = None

    @classmethod
    def stamped(cls, seq: int) -> Record:
        return cls(offset=seq, timestamp=1_000 + seq, headers=encode_stamp("p", 1, seq))


@pytest.fixture
async def consumer() -> AsyncIterator[AIOKafkaConsumer]:
    # A real consumer that is never started: the marking path makes no Kafka call.
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9")
    yield consumer
    await consumer.stop()


def verifier(consumer: AIOKafkaConsumer) -> ConsumerVerifier:
    v = ConsumerVerifier(
        consumer,
        VerifierConfig(
            group_id="billing",
            bootstrap_servers="127.0.0.1:9",
            tracker=TrackerConfig(grace_period=0, ring_size=64),
        ),
        registry=None,
    )
    v.ledger.adopt("orders", 0, snapshot=None, start_offset=0)
    return v


class TestMarking:
    async def test_processing_marks_only_when_the_block_succeeds(
        self, consumer: AIOKafkaConsumer
    ) -> None:
        """A block that raises leaves the record unprocessed; the exception propagates."""
        v = verifier(consumer)
        with v.processing(Record.stamped(0)):
            pass
        with pytest.raises(RuntimeError), v.processing(Record.stamped(1)):
            raise RuntimeError("handler failed")
        part = v.ledger.get("orders", 0)
        assert part is not None
        assert part.counters.records == 1
        assert part.frontier == 1

    async def test_the_handler_decorator_marks_after_the_handler_returns(
        self, consumer: AIOKafkaConsumer
    ) -> None:
        """A decorated handler marks its record after returning, never after raising."""
        v = verifier(consumer)

        @v.handler
        async def handle(record: Record, *, fail: bool = False) -> int:
            if fail:
                raise ValueError("nope")
            return record.offset * 10

        assert await handle(Record.stamped(0)) == 0
        with pytest.raises(ValueError, match="nope"):
            await handle(Record.stamped(1), fail=True)
        part = v.ledger.get("orders", 0)
        assert part is not None
        assert part.counters.records == 1

    async def test_processed_twice_reaches_subscribers_as_a_duplicate(
        self, consumer: AIOKafkaConsumer
    ) -> None:
        """Events go through the fan-out to subscribers (the sinks' seam)."""
        v = verifier(consumer)
        seen: list[object] = []

        class Collect:
            name = "collect"

            def handle(self, events: object, now: float) -> None:
                seen.extend(events)  # type: ignore[call-overload]

        v.fanout.subscribe(Collect())
        v.processed(Record.stamped(0))
        v.processed(Record.stamped(0))
        assert [type(e).__name__ for e in seen] == ["DuplicateRecords"]

    async def test_flush_before_start_is_refused(self, consumer: AIOKafkaConsumer) -> None:
        """Durability cannot be promised by a verifier that is not connected."""
        with pytest.raises(VerifierError, match="start"):
            await verifier(consumer).flush()
