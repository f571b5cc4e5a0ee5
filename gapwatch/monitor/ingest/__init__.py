"""The way of a record into the monitor: fetch, stamp, tracker, events.

:mod:`.consumer` (the group consumer loop and its facts), :mod:`.recordpath` (a fetched
batch into its tracker, the measured hot path), :mod:`.logcheck` (retention, truncation
and leader changes: re-reading the log) and :mod:`.reports` (producers' reports read
from their topic into the trackers).
"""
