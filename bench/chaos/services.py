"""The services the fault suite runs, and their durables.

The suite drives loans, catalog and notifications: the read side (monitoring) is not part of its cluster, so
its durables are neither provisioned nor checked here (its own guarantees: tests/integration/guarantees/
test_monitoring.py, and its rebuild: tests/integration/monitoring/test_recovery.py).
"""

from __future__ import annotations

from kumkm_shared.messaging.topology import CONSUMER_DECLS as ALL_CONSUMER_DECLS

SERVICES = ("loans", "catalog", "notifications")
CONSUMER_DECLS = tuple(d for d in ALL_CONSUMER_DECLS if d.service in SERVICES)
