"""The producer side of gapwatch: stamping, delivery bookkeeping and producer reports.

* :class:`StampedProducer`: a drop-in ``aiokafka.AIOKafkaProducer`` that stamps records.
* :class:`Stamper`: stamps and bookkeeping for other clients (confluent-kafka, ...).

The producer-report wire format (``encode_report``, ``decode_report``) is shared with the
monitor and lives in :mod:`gapwatch.core.report_codec`.
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
from gapwatch.producer.reports import ReportStats
from gapwatch.producer.stamped import StampedProducer, StampedRecord
from gapwatch.producer.stamper import Stamper

__all__ = [
    "DEFAULT_REPORT_TOPIC",
    "DeliveryBook",
    "ProducerCollector",
    "ProducerConfigError",
    "ReportConfig",
    "ReportStats",
    "SeqRanges",
    "StampedProducer",
    "StampedRecord",
    "Stamper",
    "StreamBook",
    "collector_for",
    "default_producer_id",
    "murmur2_partition",
    "new_epoch",
]
