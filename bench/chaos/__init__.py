"""The whole-system fault harness: cluster supervision, sinks, workload, ledger, faults and the checker.

``python -m bench.chaos`` (``make chaos``) runs the full fault suite; ``bench/system.py`` reuses the
cluster, the sinks and the workload for the benchmark; ``tests/acceptance/chaos`` runs a short version.
"""
