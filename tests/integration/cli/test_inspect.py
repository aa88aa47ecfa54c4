"""`kumkm tail` follows events across streams; `kumkm streams` shows streams, consumers and the DLQ count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nats
import pytest

from kumkm_shared.messaging.provision import provision
from tests.support.events import loan_disbursed, to_bytes

pytestmark = pytest.mark.integration

KUMKM = str(Path(sys.executable).parent / "kumkm")


def kumkm(*args: str, nats_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUMKM_")}
    env["KUMKM_NATS_URL"] = nats_url
    env["COLUMNS"] = "200"
    return subprocess.run([KUMKM, *args], capture_output=True, text=True, env=env, check=False, timeout=60)


async def test_tail_all_shows_events_of_every_stream_and_streams_counts_them(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await provision(js)
        loan = loan_disbursed()
        await js.publish(loan["type"], to_bytes(loan))
        contact = {
            "specversion": "1.0",
            "id": "0b7f2d6e-4a59-4d8b-9f51-6c0e2f7a9b11",
            "source": "tests",
            "type": "kumkm.notifications.contact.upserted.v1",
            "time": "2026-11-26T00:00:00Z",
            "datacontenttype": "application/json",
            "data": {"party_id": "X"},
        }
        await js.publish(contact["type"], json.dumps(contact).encode())
        await js.publish("kumkm.dlq.loans", b"{}")
    finally:
        await nc.drain()

    tailed = kumkm("tail", "--all", "--limit", "2", nats_url=nats_url)
    assert tailed.returncode == 0, tailed.stderr
    assert "kumkm.loans.loan.disbursed.v1" in tailed.stdout
    assert "kumkm.notifications.contact.upserted.v1" in tailed.stdout
    assert loan["data"]["loan_id"] in tailed.stdout

    shown = kumkm("streams", nats_url=nats_url)
    assert shown.returncode == 0, shown.stderr
    for name in ("KUMKM_LOANS", "KUMKM_CATALOG", "KUMKM_NOTIFICATIONS", "KUMKM_DLQ", "notifications-loans"):
        assert name in shown.stdout
    assert "dead letters: 1" in shown.stdout
