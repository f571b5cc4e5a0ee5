"""The consumer-side verifier: did *this consumer group* process every record, once?

The monitor reads the log as a group of its own, so it cannot see what another group
did. :class:`ConsumerVerifier` sits inside the application: the application marks each
record processed, the verifier tracks the marked sequences per (group, topic, partition,
producer, epoch) with the monitor's tracker, keeps its state in Kafka (survives SIGKILL),
and reports records committed but never processed (gaps) and records processed twice
(duplicates) through the monitor's metrics (with a ``group`` label) and sinks.

Pure part: :mod:`.ledger`. Adapters: :mod:`.store` (checkpoints), :mod:`.metrics`.
Composition root: :mod:`.verifier`. Settings: :mod:`.config`. See ``docs/verifier.md``.
"""

from gapwatch.verifier.config import VerifierConfig, VerifierConfigError
from gapwatch.verifier.ledger import ProcessedRecord
from gapwatch.verifier.verifier import ConsumerVerifier, VerifierError

__all__ = [
    "ConsumerVerifier",
    "ProcessedRecord",
    "VerifierConfig",
    "VerifierConfigError",
    "VerifierError",
]
