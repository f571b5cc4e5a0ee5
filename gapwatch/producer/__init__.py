"""The producer side of gapwatch: stamping, delivery bookkeeping and producer reports.

* :class:`StampedProducer`: a drop-in ``aiokafka.AIOKafkaProducer`` that stamps records.
* :class:`Stamper`: stamps and bookkeeping for other clients (confluent-kafka, ...).
* :func:`encode_report` / :func:`decode_report`: the producer-report wire format.
"""

from gapwatch.producer.bookkeeping import DeliveryBook, StreamBook
from gapwatch.producer.config import (
    DEFAULT_REPORT_TOPIC,
    ProducerConfigError,
    ReportConfig,
)
from gapwatch.producer.identity import default_producer_id, new_epoch
from gapwatch.producer.metrics import ProducerCollector, collector_for
from gapwatch.producer.partitioning import murmur2_partition
from gapwatch.producer.ranges import SeqRanges
from gapwatch.producer.report_codec import (
    REPORT_FORMAT_VERSION,
    ReportDecodeError,
    decode_report,
    encode_report,
    encode_report_key,
)
from gapwatch.producer.reports import ReportStats
from gapwatch.producer.stamped import StampedProducer, StampedRecord
from gapwatch.producer.stamper import Stamper

__all__ = [
    "DEFAULT_REPORT_TOPIC",
    "REPORT_FORMAT_VERSION",
    "DeliveryBook",
    "ProducerCollector",
    "ProducerConfigError",
    "ReportConfig",
    "ReportDecodeError",
    "ReportStats",
    "SeqRanges",
    "StampedProducer",
    "StampedRecord",
    "Stamper",
    "StreamBook",
    "collector_for",
    "decode_report",
    "default_producer_id",
    "encode_report",
    "encode_report_key",
    "murmur2_partition",
    "new_epoch",
]
