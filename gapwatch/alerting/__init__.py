"""Telling people what the monitor found: the gap log, the fleet view, live events and sinks.

Pure parts (no I/O, clock passed in): :mod:`.changes` (gap changes and their wire form),
:mod:`.fleet` (the fleet-wide gap store), :mod:`.alertbook` (which Alertmanager alerts are
active; the alerts themselves in :mod:`.alertkinds`, its settings in :mod:`.alertpolicy`),
:mod:`.retry` (backoff). Adapters around them: :mod:`.gaplog` (Kafka),
:mod:`.eventhub` (``GET /events``), :mod:`.alertmanager` and :mod:`.webhook` (HTTP sinks
on :mod:`.delivery`), :mod:`.metrics` (their Prometheus counters). Everything is wired in
the monitor's one composition root, :mod:`gapwatch.monitor.app`.
"""
