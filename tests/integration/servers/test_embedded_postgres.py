# EmbeddedPostgres: a cluster kept across restarts and crashes, init scripts run once like the official image.
from pathlib import Path

import asyncpg
import pytest

from kumkm_shared.servers import EmbeddedPostgres, InitScriptError

pytestmark = pytest.mark.integration


async def fetchval(dsn: str, query: str) -> object:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


async def execute(dsn: str, query: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(query)
    finally:
        await connection.close()


async def test_data_survives_restart_and_kill(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path, fsync=False)
    assert server.dsn == f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
    with server:
        assert await fetchval(server.dsn, "SHOW fsync") == "off"
        assert await fetchval(server.dsn, "SHOW max_connections") == "200"
        await execute(server.dsn, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (1)")
        server.restart()
        await execute(server.dsn, "INSERT INTO kept VALUES (2)")
        server.kill()
        assert not server.running
        server.start()  # crash recovery replays the WAL
        assert await fetchval(server.dsn, "SELECT sum(n) FROM kept") == 3
    assert not server.running
    assert "database system is ready" in (tmp_path / "postgres.log").read_text()


async def test_fsync_is_on_by_default(tmp_path: Path) -> None:
    with EmbeddedPostgres(tmp_path) as server:
        assert await fetchval(server.dsn, "SHOW fsync") == "on"


async def test_init_scripts_run_once_in_name_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scripts = tmp_path / "initdb.d"
    scripts.mkdir()
    (scripts / "01_schema.sql").write_text("CREATE TABLE runs (script text);\nINSERT INTO runs VALUES ('sql');\n")
    # Like the official image: env for libpq, psql on PATH, secrets from the caller's environment.
    (scripts / "02_role.sh").write_text(
        "set -eu\n"
        'test "$POSTGRES_USER" = postgres\n'
        "psql -v ON_ERROR_STOP=1 -c \"CREATE ROLE app LOGIN PASSWORD '$APP_PASSWORD'\"\n"
        "psql -c \"INSERT INTO runs VALUES ('sh')\"\n"
    )
    (scripts / "03_ignored.txt").write_text("not a script")
    monkeypatch.setenv("APP_PASSWORD", "s3cret")
    server = EmbeddedPostgres(tmp_path / "pg", init_scripts=scripts, fsync=False)
    with server:
        assert await fetchval(server.dsn, "SELECT string_agg(script, ',' ORDER BY ctid) FROM runs") == "sql,sh"
        assert await fetchval(server.dsn_for("app", "s3cret"), "SELECT current_user") == "app"
    with server:
        assert await fetchval(server.dsn, "SELECT count(*) FROM runs") == 2


async def test_failed_init_script_leaves_no_cluster(tmp_path: Path) -> None:
    scripts = tmp_path / "initdb.d"
    scripts.mkdir()
    (scripts / "01_broken.sql").write_text("CREATE TABLE ok (n int);\nSELECT no_such_function();\n")
    server = EmbeddedPostgres(tmp_path / "pg", init_scripts=scripts, fsync=False)
    with pytest.raises(InitScriptError, match="01_broken.sql"):
        server.start()
    assert not server.running
    assert not server.initialized
    (scripts / "01_broken.sql").write_text("CREATE TABLE ok (n int);\n")
    with server:
        assert await fetchval(server.dsn, "SELECT count(*) FROM ok") == 0


def test_dsn_for_quotes_credentials(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path, port=15432)
    assert server.dsn_for("loans", "p@ss:word/", "kumkm") == "postgresql://loans:p%40ss%3Aword%2F@127.0.0.1:15432/kumkm"
    assert server.dsn_for("loans") == "postgresql://loans@127.0.0.1:15432/postgres"
