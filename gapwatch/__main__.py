"""Allow ``python -m gapwatch``."""

from gapwatch.cli import main

raise SystemExit(main())
