"""The provisioner applies config changes idempotently; the migrations runner refuses edited history."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import asyncpg
import nats
import pytest

from kumkm_shared.db.migrations import Migration, MigrationError, migrate
from kumkm_shared.messaging.provision import provision
from kumkm_shared.messaging.topology import CONSUMER_DECLS, STREAM_DECLS

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration


async def test_provision_creates_then_is_idempotent_then_applies_changes(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        first = await provision(js)
        # every stream, every durable, and the integrators' mandate bucket
        assert len(first.created) == len(STREAM_DECLS) + len(CONSUMER_DECLS) + 1
        assert "bucket KUMKM_MANDATES" in first.created
        second = await provision(js)
        assert second.created == []
        assert second.updated == []
        changed = [
            replace(d, max_deliver=d.max_deliver + 3) if d.name == "loans" else d for d in CONSUMER_DECLS
        ]
        third = await provision(js, consumers=changed)
        assert third.updated == ["consumer KUMKM_LOANS/loans"]
        info = await js.consumer_info("KUMKM_LOANS", "loans")
        assert info.config.max_deliver == next(d for d in changed if d.name == "loans").max_deliver
        stream = await js.stream_info("KUMKM_LOANS")
        assert stream.config.duplicate_window is not None
        assert stream.config.duplicate_window >= 120
        assert stream.config.storage == "file"
    finally:
        await nc.drain()


async def test_migrations_apply_once_and_refuse_a_changed_applied_file(
    database_url: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        first = [
            Migration(1, "things", "CREATE TABLE things (id int)"),
            Migration(2, "more", "ALTER TABLE things ADD x int"),
        ]
        assert await migrate(conn, "svc", first) == [1, 2]
        assert await migrate(conn, "svc", first) == []
        assert await conn.fetchval("SELECT count(*) FROM svc.things") == 0
        edited = [first[0], Migration(2, "more", "ALTER TABLE things ADD y int")]
        with pytest.raises(MigrationError, match="was changed after it was applied"):
            await migrate(conn, "svc", edited)
    finally:
        await conn.close()
