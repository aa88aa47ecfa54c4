# obtain_servers: given URLs first, then containers, then embedded servers whose data outlives them.
from pathlib import Path

import asyncpg
import pytest

from kumkm_shared.servers import obtain_servers

pytestmark = pytest.mark.integration


def test_environment_urls_win_and_start_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUMKM_NATS_URL", "nats://nats.example:4222")
    monkeypatch.setenv("KUMKM_DATABASE_URL", "postgresql://loans@db.example/kumkm")
    with obtain_servers(tmp_path) as handle:
        assert handle.mode == "env"
        assert handle.servers.nats is None
        assert (handle.nats_url, handle.database_url) == (
            "nats://nats.example:4222",
            "postgresql://loans@db.example/kumkm",
        )
    assert list(tmp_path.iterdir()) == []


def test_half_an_environment_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUMKM_NATS_URL", "nats://nats.example:4222")
    monkeypatch.delenv("KUMKM_DATABASE_URL", raising=False)
    with pytest.raises(ValueError, match="KUMKM_DATABASE_URL"):
        obtain_servers(tmp_path)


async def test_embedded_servers_reuse_their_data(
    server_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUMKM_NATS_URL", raising=False)
    monkeypatch.delenv("KUMKM_DATABASE_URL", raising=False)
    with obtain_servers(server_data_dir, fsync=False, mode="embedded") as handle:
        assert handle.servers.postgres is not None
        assert handle.servers.postgres.running
        connection = await asyncpg.connect(handle.database_url)
        await connection.execute("CREATE TABLE kept (n int)")
        await connection.close()
    assert handle.servers.postgres is not None
    assert not handle.servers.postgres.running
    with obtain_servers(server_data_dir, fsync=False, mode="embedded") as again:
        assert again.servers.nats is not None
        assert again.servers.nats.data_dir == server_data_dir / "nats"
        connection = await asyncpg.connect(again.database_url)
        assert await connection.fetchval("SELECT count(*) FROM kept") == 0
        await connection.close()
