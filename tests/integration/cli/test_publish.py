"""`kumkm publish` validates before connecting, exits 2 naming each bad field, and de-duplicates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import nats
import pytest

from kumkm_shared.messaging.provision import provision
from tests.support.events import loan_disbursed

if TYPE_CHECKING:
    from collections.abc import Sequence

pytestmark = pytest.mark.integration

KUMKM = str(Path(sys.executable).parent / "kumkm")


def run_kumkm(args: Sequence[str], nats_url: str | None, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUMKM_")}
    if nats_url:
        env["KUMKM_NATS_URL"] = nats_url
    env["KUMKM_DATA_DIR"] = str(tmp_path / "nowhere")
    return subprocess.run([KUMKM, *args], capture_output=True, text=True, env=env, check=False, timeout=60)


async def _stream_messages(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        return (await nc.jetstream().stream_info("KUMKM_LOANS")).state.messages
    finally:
        await nc.drain()


async def test_invalid_file_exits_2_names_the_field_and_publishes_nothing(
    nats_url: str, tmp_path: Path
) -> None:
    nc = await nats.connect(nats_url)
    await provision(nc.jetstream())
    await nc.drain()
    event = loan_disbursed()
    event["data"]["principal"] = 2500000000.5  # a float: money is never float
    del event["data"]["tenor_months"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(event))
    result = run_kumkm(["publish", str(path)], nats_url, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "data.principal" in output
    assert "data.tenor_months" in output
    assert await _stream_messages(nats_url) == 0


def test_validation_happens_before_any_connection(tmp_path: Path) -> None:
    event = loan_disbursed()
    event["data"]["borrower"]["id"] = "123"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(event))
    # No server at all: the contract error must still be reported with exit code 2.
    result = run_kumkm(["publish", str(path)], "nats://127.0.0.1:1", tmp_path)
    assert result.returncode == 2
    assert "data.borrower.id" in result.stdout + result.stderr


async def test_valid_file_is_published_once_even_when_published_twice(nats_url: str, tmp_path: Path) -> None:
    nc = await nats.connect(nats_url)
    await provision(nc.jetstream())
    await nc.drain()
    event = loan_disbursed()
    del event["id"]  # a stable id is derived from the content, so a re-publish is a duplicate
    path = tmp_path / "good.json"
    path.write_text(json.dumps(event))
    first = run_kumkm(["publish", "--as", "bank-bjb", str(path)], nats_url, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "kumkm.loans.loan.disbursed.v1.bank-bjb" in first.stdout  # the sender's token on the subject
    second = run_kumkm(["publish", "--as", "bank-bjb", str(path)], nats_url, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "duplicate" in second.stdout
    assert await _stream_messages(nats_url) == 1


def test_an_integrators_event_needs_the_sending_organisation(tmp_path: Path) -> None:
    path = tmp_path / "good.json"
    path.write_text(json.dumps(loan_disbursed()))
    # Checked before any connection, like the contract.
    missing = run_kumkm(["publish", str(path)], "nats://127.0.0.1:1", tmp_path)
    assert missing.returncode == 2
    assert "--as" in missing.stdout + missing.stderr
    bad = run_kumkm(["publish", "--as", "Bank.BJB", str(path)], "nats://127.0.0.1:1", tmp_path)
    assert bad.returncode == 2
    assert "not an organisation id" in bad.stdout + bad.stderr
