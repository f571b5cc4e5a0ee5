"""Sub-commands of the ``gapwatch`` command line, one module each, and their helpers.

Commands: :mod:`.monitor`, :mod:`.audit`, :mod:`.gaps`, :mod:`.loadgen`. Helpers of the
one-shot commands live beside them: :mod:`.range_audit` (reading and judging a topic
range for ``gapwatch audit``), :mod:`.gaptable` (the gap table ``gapwatch gaps`` and
``audit`` print) and :mod:`.agreement` (comparing a load generator's injected faults with
what a monitor reported, for the demo).
"""
