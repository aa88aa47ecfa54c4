"""``kumkm registry import``: a city's cooperative or UMKM list (CSV or XLSX) as registry events.

Pure parts (``columns``, ``rows``, ``source``) read and validate; ``run`` publishes on JetStream as the
registry organisation, resumable. Rules: ``docs/rules/registry-import.md``.
"""
