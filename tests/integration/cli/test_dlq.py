"""`kumkm dlq`: list, show, replay after a fix (idempotent), purge with confirmation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kumkm_shared.messaging.dlq_ops import read_dead_letters
from kumkm_shared.testing import wait_for
from tests.support.events import loan_disbursed, repayment_received, to_bytes

if TYPE_CHECKING:
    import nats

    from kumkm_shared import ServiceRuntime
    from tests.support.toy import Toy

pytestmark = pytest.mark.integration

KUMKM = str(Path(sys.executable).parent / "kumkm")


def kumkm(*args: str, nats_url: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUMKM_")}
    env["KUMKM_NATS_URL"] = nats_url
    return subprocess.run(
        [KUMKM, "dlq", *args], capture_output=True, text=True, env=env, input=stdin, check=False, timeout=60
    )


async def test_replay_after_a_fix_applies_once_and_a_second_replay_has_no_effect(
    runtime: ServiceRuntime, provisioned: nats.aio.client.Client, toy: Toy, nats_url: str
) -> None:
    js = provisioned.jetstream()
    bad = repayment_received("LN-R", reference="refuse")
    junk = b"{broken"
    await js.publish(bad["type"], to_bytes(bad))
    await js.publish("kumkm.loans.loan.disbursed.v1", junk)
    await wait_for(lambda: _count(js, 2), timeout=10)

    listed = kumkm("list", "--reason", "illegal_transition", "--json", nats_url=nats_url)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["reason_code"] for r in rows] == ["illegal_transition"]
    assert rows[0]["subject"] == bad["type"]
    letters = await read_dead_letters(js)
    refused = next(x for x in letters if x.letter.reason_code == "illegal_transition")

    shown = kumkm("show", str(refused.seq), nats_url=nats_url)
    assert shown.returncode == 0, shown.stderr
    assert bad["id"] in shown.stdout
    assert "repayment refused by the toy rules" in shown.stdout

    # The fix: the toy now accepts the reference. Replay twice; the effect happens once.
    toy.accept_refused = True
    first = kumkm("replay", str(refused.seq), nats_url=nats_url)
    assert first.returncode == 0, first.stderr
    second = kumkm("replay", str(refused.seq), nats_url=nats_url)
    assert "already replayed" in second.stdout
    await wait_for(lambda: _repaid(runtime), timeout=10)
    # A replay after the broker's window would get through; the inbox makes it a no-op.
    await js.publish(bad["type"], to_bytes(bad), headers={"Nats-Msg-Id": "late-replay"})
    fine = loan_disbursed()
    await js.publish(fine["type"], to_bytes(fine))
    await wait_for(lambda: _disbursed(runtime), timeout=10)
    assert await runtime.pool.fetchval("SELECT count(*) FROM toy.effects WHERE kind = 'repaid'") == 1

    refused_purge = kumkm("purge", "--reason", "undecodable", nats_url=nats_url, stdin="n\n")
    assert refused_purge.returncode == 1
    assert len(await read_dead_letters(js)) == 2
    purged = kumkm("purge", "--reason", "undecodable", "--yes", nats_url=nats_url)
    assert purged.returncode == 0, purged.stderr
    remaining = await read_dead_letters(js)
    assert [x.letter.reason_code for x in remaining] == ["illegal_transition"]
    assert json.loads(remaining[0].letter.original)["id"] == bad["id"]


async def _count(js: object, n: int) -> bool:
    return len(await read_dead_letters(js)) >= n  # type: ignore[arg-type]


async def _repaid(rt: ServiceRuntime) -> bool:
    return bool(await rt.pool.fetchval("SELECT count(*) FROM toy.effects WHERE kind = 'repaid'"))


async def _disbursed(rt: ServiceRuntime) -> bool:
    return bool(await rt.pool.fetchval("SELECT count(*) FROM toy.effects WHERE kind = 'disbursed'"))
