"""The pure core of gapwatch: wire format and sequence tracking, with no I/O at all.

Nothing in this package may import asyncio, aiokafka, prometheus_client or any other
adapter: facts and the current time go in, events come out.
"""
