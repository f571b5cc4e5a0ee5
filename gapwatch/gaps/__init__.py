"""What the monitor, the verifier and alerting share about found gaps and counters.

:mod:`.fanout` (tracker events to every subscriber, failures isolated), :mod:`.store`
(the queryable gap store), :mod:`.encoding` (gaps as API JSON, encoded once) and
:mod:`.metrics` (plain metric families and the per-partition tracker metrics).
"""
