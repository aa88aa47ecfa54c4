"""Pushing an account JWT to running servers, and counting an account's connections, as the ``sys`` user.

``$SYS.REQ.CLAIMS.UPDATE`` carries the operator-signed account JWT; the full resolver stores it and applies
it at once: revoked users' open connections are closed, users of a removed signing key are cut off.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import nats
import nats.errors

from kumkm_shared.natsauth.jwt import decode
from kumkm_shared.natsauth.permissions import INBOX_PREFIX, SYS_USER

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from nats.aio.client import Client

__all__ = ["PushError", "account_connections", "push_account"]

TIMEOUT = 5.0


class PushError(RuntimeError):
    """The server refused the account JWT, or did not answer."""


async def _connect(servers: Sequence[str], sys_creds: Path) -> Client:
    prefix = INBOX_PREFIX[SYS_USER] or "_INBOX"
    return await nats.connect(
        servers=list(servers),
        name="kumkm-natsauth",
        user_credentials=str(sys_creds),
        inbox_prefix=prefix.encode(),
        connect_timeout=5,
        allow_reconnect=False,
        max_reconnect_attempts=0,
    )


async def push_account(servers: Sequence[str], sys_creds: Path, account_jwt: str) -> dict[str, Any]:
    """Send ``account_jwt`` to the servers; returns the server's reply (``{"data": {"code": 200, ...}}``)."""
    account = decode(account_jwt).subject
    nc = await _connect(servers, sys_creds)
    try:
        try:
            msg = await nc.request("$SYS.REQ.CLAIMS.UPDATE", account_jwt.encode(), timeout=TIMEOUT)
        except nats.errors.TimeoutError:
            raise PushError("no server answered the account update ($SYS.REQ.CLAIMS.UPDATE)") from None
        except nats.errors.NoRespondersError:
            raise PushError("no server listens for account updates: is the resolver `full`?") from None
    finally:
        await nc.close()
    try:
        reply: dict[str, Any] = json.loads(msg.data)
    except ValueError:
        raise PushError(f"unreadable reply to the account update: {msg.data[:200]!r}") from None
    error = reply.get("error")
    if error:
        raise PushError(f"the server refused the update of account {account}: {error}")
    data = reply.get("data") or {}
    if data.get("account") not in {None, account} or data.get("code") not in {None, 200}:
        raise PushError(f"unexpected reply to the account update: {reply}")
    return reply


async def account_connections(
    servers: Sequence[str], sys_creds: Path, account: str, *, gather: float = 0.5
) -> list[dict[str, Any]]:
    """The account's open connections on every server that answers within ``gather`` seconds (each with
    ``authorized_user``, the user's public key, and ``name_tag``)."""
    nc = await _connect(servers, sys_creds)
    found: list[dict[str, Any]] = []
    try:
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        # ConnzOptions: the account filter is "acc".
        request = json.dumps({"acc": account, "auth": True, "limit": 100000}).encode()
        await nc.publish("$SYS.REQ.SERVER.PING.CONNZ", request, reply=inbox)
        await nc.flush()
        deadline = asyncio.get_running_loop().time() + gather
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                msg = await sub.next_msg(timeout=left)
            except (nats.errors.TimeoutError, TimeoutError):
                break
            body = json.loads(msg.data)
            found.extend(c for c in (body.get("data") or {}).get("connections") or [] if isinstance(c, dict))
    finally:
        await nc.close()
    return found
