"""The monitor's Prometheus metrics: :mod:`.collector` (values read at scrape time) and
:mod:`.exposition` (the lean text renderer and the ``/metrics`` page)."""
