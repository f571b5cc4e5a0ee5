"""What every Kafka-facing part of gapwatch shares: client settings, topics, checkpoints.

:mod:`.settings` (servers, security, aiokafka constructor arguments), :mod:`.topics`
(admin calls that check and create topics), :mod:`.checkpoints` (tracker snapshots kept
in a compacted topic, pointed at by the group's commit metadata) and
:mod:`.aiokafka_consumer` (the one module that reads aiokafka consumer internals). The
monitor and the verifier both build on these; nothing here knows either of them.
"""
