"""Sub-commands of the ``gapwatch`` command line, one module each."""
