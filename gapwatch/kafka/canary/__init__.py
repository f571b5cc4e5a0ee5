"""The canary: a topic with a partition led by each broker, written at a small steady
rate, so a broker that stops taking writes shows before any application writes to it.

``placement`` and ``availability`` are pure decisions (tested without Kafka);
``elect_leaders`` adds Kafka's ElectLeaders request, which aiokafka lacks; ``lanes``
keeps each partition's stamped record until it is acknowledged; ``runner`` runs it all
against the cluster; ``metrics`` exposes it; ``settings`` is its configuration.
"""
