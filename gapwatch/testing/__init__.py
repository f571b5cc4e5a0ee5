"""Test helpers for gapwatch and its users: a throwaway, real Apache Kafka cluster.

The public API lives in :mod:`gapwatch.testing.kafka` (cluster, fault controls, CLI) and
:mod:`gapwatch.testing.pytest_plugin` (fixtures). This package module deliberately imports
neither, so that ``python -m gapwatch.testing.kafka`` does not import its own module twice.
"""
