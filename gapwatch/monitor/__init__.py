"""The monitor: adapters that feed Kafka into the pure tracker and expose what it finds.

One module per concern (configuration, consumer loop, checkpoints, confirmation facts,
metrics, gap store, HTTP API); :mod:`gapwatch.monitor.app` is the one place that wires
them together on a single event loop.
"""
