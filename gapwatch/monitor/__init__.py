"""The monitor: adapters that feed Kafka into the pure tracker and expose what it finds.

Read in the order a record travels: :mod:`.ingest` (the consumer loop, the record path,
log checks, producer reports) feeds :mod:`.state` (each owned partition with its tracker,
checkpoint rounds, rebalances); :mod:`.api` and :mod:`.metrics` show what the trackers
found. :mod:`.app` is the one place that builds them all and runs them on a single event
loop; :mod:`.config` says what a valid configuration is, :mod:`.config_sources` where its
values come from, :mod:`.health` what the monitor counts about itself.
"""
