"""What the tests against secured brokers share."""

from __future__ import annotations

import pytest

# aiokafka 0.14 drops some TLS connections without finishing their close (after a refused
# handshake, or while the group coordinator is not ready yet on a fresh cluster), so the
# garbage collector closes their sockets later, with a ResourceWarning in whichever test
# runs then (pytest turns it into an error). Only those two leak reports are ignored.
IGNORE_DROPPED_TLS_SOCKETS = [
    pytest.mark.filterwarnings(
        r"ignore:Exception ignored in. <socket\.socket:pytest.PytestUnraisableExceptionWarning"
    ),
    pytest.mark.filterwarnings(
        r"ignore:Exception ignored in. <function _SelectorTransport\.__del__"
        ":pytest.PytestUnraisableExceptionWarning"
    ),
]
