"""The header list a StampedProducer sends with each record: the caller's plus one stamp.

The three stamp headers (producer, epoch, sequence) are appended after the caller's
headers, whose order is kept. Stamp headers already in the caller's list (a record being
forwarded from another stamped topic) are dropped first: two stamps would make the record
malformed (rule 5 of :mod:`gapwatch.producer.stamped`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final

from gapwatch.core.wire import HEADER_EPOCH, HEADER_PRODUCER, HEADER_SEQ

# Logged under the producer's module name, as before this code had a module of its own,
# so logging configuration aimed at gapwatch.producer.stamped still covers the warning.
log = logging.getLogger("gapwatch.producer.stamped")

_STAMP_NAMES: Final = frozenset((HEADER_PRODUCER, HEADER_EPOCH, HEADER_SEQ))
Header = tuple[str, bytes]


class StampHeaders:
    """Builds the headers of each record of one producer incarnation (id and epoch)."""

    __slots__ = ("_epoch_header", "_producer_header", "_warned_restamp")

    def __init__(self, producer_header: Header, epoch_header: Header) -> None:
        self._producer_header = producer_header
        self._epoch_header = epoch_header
        self._warned_restamp = False

    def build(self, topic: str, headers: Iterable[Header] | None, seq: int) -> list[Header]:
        """``headers`` without any old stamp, then this producer's stamp for ``seq``."""
        seq_header = (HEADER_SEQ, b"%d" % seq)
        if not headers:
            return [self._producer_header, self._epoch_header, seq_header]
        result = list(headers)
        for name, _ in result:
            if name in _STAMP_NAMES:
                result = [h for h in result if h[0] not in _STAMP_NAMES]
                if not self._warned_restamp:
                    # Once per producer: a forwarding pipeline would otherwise log per record.
                    self._warned_restamp = True
                    log.warning(
                        "gapwatch: records to %s already carry gapwatch headers; "
                        "replacing them with this producer's stamp",
                        topic,
                    )
                break
        result.append(self._producer_header)
        result.append(self._epoch_header)
        result.append(seq_header)
        return result
