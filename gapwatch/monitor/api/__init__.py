"""The monitor's HTTP API: :mod:`.http` (the app and the running monitor's status) and
:mod:`.models` (the typed JSON shapes it documents)."""
