# EmbeddedPostgres: a cluster kept across restarts and crashes, init scripts run once like the official image.
import os
import stat
from pathlib import Path

import pytest

from kumkm_shared.servers import EmbeddedPostgres, InitScriptError
from tests.support.pg import execute, fetchval

pytestmark = pytest.mark.integration


async def test_data_survives_restart_and_kill(server_data_dir: Path) -> None:
    server = EmbeddedPostgres(server_data_dir, fsync=False)
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
    assert "database system is ready" in (server_data_dir / "postgres.log").read_text()
    with EmbeddedPostgres(server_data_dir) as durable:  # same cluster, another port, fsync on by default
        assert durable.port != server.port
        assert await fetchval(durable.dsn, "SHOW fsync") == "on"
        assert await fetchval(durable.dsn, "SELECT sum(n) FROM kept") == 3


async def test_init_scripts_run_once_in_name_order(
    server_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripts = server_data_dir / "initdb.d"
    scripts.mkdir()
    (scripts / "01_schema.sql").write_text(
        "CREATE TABLE runs (script text);\nINSERT INTO runs VALUES ('sql');\n"
    )
    # Like the official image: env for libpq, psql on PATH, secrets from the caller's environment.
    (scripts / "02_role.sh").write_text(
        "set -eu\n"
        'test "$POSTGRES_USER" = postgres\n'
        "psql -v ON_ERROR_STOP=1 -c \"CREATE ROLE app LOGIN PASSWORD '$APP_PASSWORD'\"\n"
        "psql -c \"INSERT INTO runs VALUES ('sh')\"\n"
    )
    (scripts / "03_ignored.txt").write_text("not a script")
    monkeypatch.setenv("APP_PASSWORD", "s3cret")
    server = EmbeddedPostgres(server_data_dir / "pg", init_scripts=scripts, fsync=False)
    with server:
        assert (
            await fetchval(server.dsn, "SELECT string_agg(script, ',' ORDER BY ctid) FROM runs") == "sql,sh"
        )
        assert await fetchval(server.dsn_for("app", "s3cret"), "SELECT current_user") == "app"
    with server:
        assert await fetchval(server.dsn, "SELECT count(*) FROM runs") == 2


async def test_failed_init_script_leaves_no_cluster(server_data_dir: Path) -> None:
    scripts = server_data_dir / "initdb.d"
    scripts.mkdir()
    (scripts / "01_broken.sql").write_text("CREATE TABLE ok (n int);\nSELECT no_such_function();\n")
    server = EmbeddedPostgres(server_data_dir / "pg", init_scripts=scripts, fsync=False)
    with pytest.raises(InitScriptError, match=r"01_broken\.sql"):
        server.start()
    assert not server.running
    assert not server.initialized
    (scripts / "01_broken.sql").write_text("CREATE TABLE ok (n int);\n")
    with server:
        assert await fetchval(server.dsn, "SELECT count(*) FROM ok") == 0


def test_dsn_for_quotes_credentials() -> None:
    server = EmbeddedPostgres(Path("/nonexistent/pg"), port=15432)
    assert (
        server.dsn_for("loans", "p@ss:word/", "kumkm")
        == "postgresql://loans:p%40ss%3Aword%2F@127.0.0.1:15432/kumkm"
    )
    assert server.dsn_for("loans") == "postgresql://loans@127.0.0.1:15432/postgres"


def test_server_data_dir_stays_reachable_for_the_postgres_user(server_data_dir: Path) -> None:
    # pytest resets /tmp/pytest-of-root to 0700 when any session starts; a Postgres running as another user
    # under it then PANICs at its next checkpoint ("could not open pg_control: Permission denied").
    assert not any(parent.name.startswith("pytest-of-") for parent in server_data_dir.parents)
    assert all(parent.stat().st_mode & stat.S_IXOTH for parent in server_data_dir.parents)


def test_data_under_pytest_tmp_path_is_flagged_when_root(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root runs Postgres as another user")
    with pytest.warns(RuntimeWarning, match="server_data_dir"):
        EmbeddedPostgres(tmp_path / "pg")
