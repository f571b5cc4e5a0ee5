"""What the monitor holds per owned partition, and how it survives restarts and rebalances.

:mod:`.partitions` (each owned partition: its tracker and log facts, changed only
through its methods), :mod:`.latency` (per-topic end-to-end latency), :mod:`.rounds`
(periodic checkpoint rounds: write, then commit) and :mod:`.rebalance` (save on
revocation, restore on assignment).
"""
