"""The declared durables: every one is a batch durable (one commit per pull batch)."""

from __future__ import annotations

from kumkm_shared.messaging.topology import CONSUMER_DECLS


def test_every_declared_durable_commits_per_batch() -> None:
    per_message = [d.name for d in CONSUMER_DECLS if not d.batch]
    assert per_message == [], f"durables paying one commit per event: {per_message}"
