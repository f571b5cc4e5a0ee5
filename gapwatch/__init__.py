"""gapwatch: proves whether Kafka lost, duplicated or reordered any message."""

__version__ = "0.1.0"
