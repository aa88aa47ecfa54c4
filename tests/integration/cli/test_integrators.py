"""`kumkm nats init` and `kumkm integrators add|list|revoke`, `kumkm nats rotate-key|retire-key`, run as
commands against a real nats-server in operator mode.

An organisation's creds are shown once (or written 0600), its mandate lands in the KUMKM_MANDATES bucket,
and revoking it cuts its open connection and marks the mandate revoked.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import nats
import nats.errors
import pytest
from nats.aio.client import RawCredentials

from kumkm_shared.integrators import IntegratorRole, sender_subject
from kumkm_shared.mandates import MandateBook
from kumkm_shared.natsauth import AuthDir, creds_jwt, decode
from kumkm_shared.servers import EmbeddedNats
from kumkm_shared.testing.plugin import server_folder

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

pytestmark = pytest.mark.integration

KUMKM = str(Path(sys.executable).parent / "kumkm")
DISBURSED = "kumkm.loans.loan.disbursed.v1"


@pytest.fixture
def system(tmp_path: Path) -> Iterator[tuple[EmbeddedNats, Path]]:
    auth_dir = tmp_path / "nats-auth"
    result = run_kumkm(["nats", "init", str(auth_dir)], None, None, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "created NATS auth directory" in result.stdout
    with server_folder("kumkm-cli-natsauth-") as folder:
        server = EmbeddedNats(folder, auth=AuthDir(auth_dir))
        server.start()
        try:
            yield server, auth_dir
        finally:
            server.stop()


def run_kumkm(
    args: Sequence[str], nats_url: str | None, auth_dir: Path | None, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUMKM_")}
    if nats_url:
        env["KUMKM_NATS_URL"] = nats_url
    if auth_dir:
        env["KUMKM_NATS_AUTH_DIR"] = str(auth_dir)
    env["KUMKM_DATA_DIR"] = str(tmp_path / "nowhere")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")  # no stored login: granted_by is the local user
    return subprocess.run([KUMKM, *args], capture_output=True, text=True, env=env, check=False, timeout=60)


async def _operator(server: EmbeddedNats, auth_dir: Path) -> nats.aio.client.Client:
    return await nats.connect(server.url, user_credentials=str(AuthDir(auth_dir).creds_path("operator")))


async def test_add_list_revoke_an_organisation(  # noqa: PLR0915 - one organisation's life, in order
    system: tuple[EmbeddedNats, Path], tmp_path: Path
) -> None:
    server, auth_dir = system

    def kumkm(*args: str) -> subprocess.CompletedProcess[str]:
        return run_kumkm(args, server.url, auth_dir, tmp_path)

    creds_file = tmp_path / "bank-bjb.creds"
    added = kumkm(
        "integrators",
        "add",
        "bank-bjb",
        "--role",
        "lender",
        "--party",
        "LENDER-BJB",
        "--name",
        "Bank BJB",
        "--creds-out",
        str(creds_file),
    )
    assert added.returncode == 0, added.stderr
    assert f"creds written to {creds_file}" in added.stderr
    assert "BEGIN USER NKEY SEED" not in added.stdout + added.stderr
    assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
    again = kumkm(
        "integrators", "add", "bank-bjb", "--role", "lender", "--party", "X", "--creds-out", str(creds_file)
    )
    assert again.returncode != 0
    assert "already has an active mandate" in again.stderr
    # A second role of the same organisation: its own user (its role's key), the same mandate.
    second = kumkm("integrators", "add", "bank-bjb", "--role", "payment_channel", "--all-parties",
                   "--creds-out", str(tmp_path / "bank-bjb-channel.creds"))  # fmt: skip
    assert second.returncode == 0, second.stderr

    shown = kumkm("integrators", "add", "bayar-id", "--role", "payment_channel", "--all-parties")
    assert shown.returncode == 0, shown.stderr
    assert "shown once" in shown.stderr
    channel_creds = shown.stdout
    assert decode(creds_jwt(channel_creds)).claims["name"] == "bayar-id"

    nc = await _operator(server, auth_dir)
    try:
        book = MandateBook(nc.jetstream())
        bjb = await book.get("bank-bjb")
        assert bjb is not None
        assert (bjb.name, bjb.status) == ("Bank BJB", "active")
        lender = bjb.grant(IntegratorRole.LENDER)
        assert lender is not None
        assert lender.parties == ("LENDER-BJB",)
        assert bjb.roles == {IntegratorRole.LENDER, IntegratorRole.PAYMENT_CHANNEL}
        assert len(bjb.user_keys) == 2
        assert bjb.granted_by == getpass.getuser()
        assert lender.user_keys == (decode(creds_jwt(creds_file.read_text())).subject,)
        channel = await book.get("bayar-id")
        assert channel is not None
        assert channel.grants[0].parties == ("*",)
    finally:
        await nc.close()

    listed = kumkm("integrators", "list")
    assert listed.returncode == 0, listed.stderr
    for text in ("bank-bjb", "lender", "LENDER-BJB", "bayar-id", "payment_channel", "all", "active"):
        assert text in listed.stdout

    closed = asyncio.Event()

    async def on_closed() -> None:
        closed.set()

    org = await nats.connect(
        server.url,
        user_credentials=str(creds_file),
        inbox_prefix=b"_INBOX_bank-bjb",
        closed_cb=on_closed,
        allow_reconnect=False,
        max_reconnect_attempts=0,
    )
    other = await nats.connect(
        server.url,
        user_credentials=RawCredentials(channel_creds),
        inbox_prefix=b"_INBOX_bayar-id",
        allow_reconnect=False,
    )
    try:
        js = org.jetstream()
        await nc_add_stream(server, auth_dir)
        await js.publish(sender_subject(DISBURSED, "bank-bjb"), b"{}", timeout=5)

        revoked = await asyncio.to_thread(kumkm, "integrators", "revoke", "bank-bjb")
        assert revoked.returncode == 0, revoked.stderr
        assert "1 connection(s) cut" in revoked.stdout
        await asyncio.wait_for(closed.wait(), 10)
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(
                server.url,
                user_credentials=str(creds_file),
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout=3,
            )
        ack = await other.jetstream().publish(
            sender_subject("kumkm.loans.repayment.received.v1", "bayar-id"), b"{}"
        )
        assert ack.stream == "KUMKM_LOANS"
    finally:
        await other.close()
        await org.close()

    nc = await _operator(server, auth_dir)
    try:
        bjb = await MandateBook(nc.jetstream()).get("bank-bjb")
        assert bjb is not None
        assert bjb.status == "revoked"
        assert bjb.revoked_at is not None
        assert not bjb.covers(frozenset({IntegratorRole.LENDER}), "LENDER-BJB")
        assert set(bjb.user_keys) <= set(AuthDir(auth_dir).revocations())
    finally:
        await nc.close()
    assert "revoked" in kumkm("integrators", "list").stdout


async def nc_add_stream(server: EmbeddedNats, auth_dir: Path) -> None:
    nc = await _operator(server, auth_dir)
    try:
        await nc.jetstream().add_stream(name="KUMKM_LOANS", subjects=["kumkm.loans.>"])
    finally:
        await nc.close()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["Bank.BJB", "--role", "lender", "--party", "L"], "ORG"),
        (["bank-bjb", "--role", "borrower", "--party", "L"], "--role"),
        (["bank-bjb", "--role", "lender"], "--party"),
        (["bank-bjb", "--role", "lender", "--party", "L", "--all-parties"], "--party"),
        (["loans", "--role", "lender", "--party", "L"], "ORG: 'loans' is reserved"),
        (["sys", "--role", "registry", "--all-parties"], "ORG: 'sys' is reserved"),
        (["monitoring", "--role", "registry", "--all-parties"], "ORG: 'monitoring' is reserved"),
        (["console", "--role", "buyer", "--party", "B"], "ORG: 'console' is reserved"),
        (["bank-bjb", "--role", "lender", "--party", "*"], "--party"),
    ],
)
def test_add_refuses_invalid_input_naming_the_option(args: list[str], named: str, tmp_path: Path) -> None:
    result = run_kumkm(["integrators", "add", *args], None, None, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert named in result.stderr
    assert "BEGIN NATS USER JWT" not in result.stdout


async def test_rotate_and_retire_a_role_key(system: tuple[EmbeddedNats, Path], tmp_path: Path) -> None:
    server, auth_dir = system
    auth = AuthDir(auth_dir)
    old_key = auth.role_keys(IntegratorRole.BUYER)[-1]
    old = auth.issue_integrator("dinas-a", IntegratorRole.BUYER)
    rotated = run_kumkm(["nats", "rotate-key", "buyer"], server.url, auth_dir, tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    assert "pushed account(s) INTEGRATORS" in rotated.stdout
    new_key = auth.role_keys(IntegratorRole.BUYER)[-1]
    assert new_key != old_key
    conn = await nats.connect(server.url, user_credentials=RawCredentials(old.creds), allow_reconnect=False)
    await conn.close()  # still valid after the rotation
    retired = run_kumkm(["nats", "retire-key", "buyer"], server.url, auth_dir, tmp_path)
    assert retired.returncode == 0, retired.stderr
    assert old_key in retired.stdout
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(
            server.url,
            user_credentials=RawCredentials(old.creds),
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=3,
        )
    refused = run_kumkm(["nats", "retire-key", "buyer"], server.url, auth_dir, tmp_path)
    assert refused.returncode == 1
    assert "one signing key" in refused.stderr


async def test_an_unreadable_mandate_is_no_mandate_and_revoke_still_cuts_the_organisation(
    system: tuple[EmbeddedNats, Path], tmp_path: Path
) -> None:
    """Review 12, finding 1 (defence in depth): an entry that is not a mandate (a PubAck written into the
    bucket) reads as no mandate, `list` keeps working, and `revoke` still revokes the NATS users."""
    server, auth_dir = system
    creds_file = tmp_path / "bank-bad.creds"
    added = run_kumkm(
        ["integrators", "add", "bank-bad", "--role", "lender", "--party", "L-1", "--creds-out",
         str(creds_file)],
        server.url, auth_dir, tmp_path,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    closed = asyncio.Event()

    async def on_closed() -> None:
        closed.set()

    org = await nats.connect(
        server.url,
        user_credentials=str(creds_file),
        inbox_prefix=b"_INBOX_bank-bad",
        closed_cb=on_closed,
        allow_reconnect=False,
        max_reconnect_attempts=0,
    )
    nc = await _operator(server, auth_dir)
    try:
        kv = await nc.jetstream().key_value("KUMKM_MANDATES")
        await kv.put("bank-bad", b'{"stream":"KUMKM_LOANS","seq":1}')
        assert await MandateBook(nc.jetstream()).get("bank-bad") is None
        listed = run_kumkm(["integrators", "list"], server.url, auth_dir, tmp_path)
        assert listed.returncode == 0, listed.stderr
        revoked = run_kumkm(["integrators", "revoke", "bank-bad"], server.url, auth_dir, tmp_path)
        assert revoked.returncode == 0, revoked.stderr
        assert "1 connection(s) cut" in revoked.stdout
        await asyncio.wait_for(closed.wait(), 10)
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(
                server.url,
                user_credentials=str(creds_file),
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout=3,
            )
        stored = await MandateBook(nc.jetstream()).get("bank-bad")
        assert stored is not None
        assert stored.status == "revoked"
        assert decode(creds_jwt(creds_file.read_text())).subject in AuthDir(auth_dir).revocations()
    finally:
        await nc.close()
        await org.close()
