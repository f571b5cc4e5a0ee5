"""Watching MirrorMaker 2 copies: where their losses and duplicates came from, and lag.

:mod:`.attributor` (source lookups for confirmed gaps and duplicates, off the record
path), :mod:`.lag` (periodic lag per owned mirrored partition), :mod:`.table` (the numbers
both keep) and :mod:`.metrics` (their ``gapwatch_mirror_*`` families). docs/mirroring.md.
"""
