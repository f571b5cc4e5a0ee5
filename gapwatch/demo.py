"""``make demo``: a local single-node Kafka to try gapwatch against.

Runs until Ctrl-C, then stops the cluster. The monitor issue turns this into the full demo
(monitor + load generator with injected faults); until then it brings up the cluster and
says how to reach it.
"""

from __future__ import annotations

import signal
import sys
import threading

from gapwatch.testing.kafka import KafkaCluster, KafkaTestbedError


def main() -> int:
    """Start the cluster, print where it is, and wait for Ctrl-C or SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with KafkaCluster(nodes=1) as cluster:
            print(f"Kafka is up: bootstrap servers {cluster.bootstrap_servers}")
            print(f"Node logs and data: {cluster.state_dir}")
            print("Press Ctrl-C to stop.")
            try:
                while not stop.wait(1.0):
                    pass
            except KeyboardInterrupt:
                pass
            print("Stopping Kafka...")
    except KafkaTestbedError as error:
        print(f"demo: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
