"""gapwatch's version, in a module of its own so that anything may import it.

The package's ``__init__`` imports the verifier on demand; a version read from there
would tie every user of the version (User-Agent, ``gapwatch_build_info``, ``--version``)
to the package root. Hatch reads the version from this file (``pyproject.toml``).
"""

__version__ = "0.1.0"
