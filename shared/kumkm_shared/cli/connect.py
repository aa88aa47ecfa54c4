"""A plain nats-py connection for operator commands (publish, tail, streams, dlq, provision)."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

import nats

from kumkm_shared.cli.runinfo import RunInfo, nats_credentials, nats_creds_file

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from nats.aio.client import Client


@contextlib.asynccontextmanager
async def connect(
    info: RunInfo, *, name: str = "kumkm-cli", creds: Path | None = None, inbox_prefix: str | None = None
) -> AsyncIterator[Client]:
    """``creds``: a .creds file to connect with (an organisation's), instead of ``nats_creds_file``;
    ``inbox_prefix``: its private inbox prefix (``_INBOX_<org>``), unless ``KUMKM_NATS_INBOX_PREFIX`` says."""
    user, password = nats_credentials()
    options: dict[str, Any] = {
        "servers": info.nats_url.split(","),
        "name": name,
        "connect_timeout": 5,
        "max_reconnect_attempts": 3,
    }
    creds = creds or nats_creds_file(info)
    if creds is not None:
        options["user_credentials"] = str(creds)
    elif user:
        options["user"] = user
        options["password"] = password or ""
    inbox_prefix = os.environ.get("KUMKM_NATS_INBOX_PREFIX") or inbox_prefix
    if inbox_prefix:
        options["inbox_prefix"] = inbox_prefix.encode()
    nc = await nats.connect(**options)
    try:
        yield nc
    finally:
        await nc.drain()
