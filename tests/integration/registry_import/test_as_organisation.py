"""``kumkm registry import --as ORG --creds FILE`` against nats-server in operator mode: the organisation's
own NATS user publishes its rows on ``<type>.<org>``; the same creds cannot publish as another one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import nats
import pytest

from kumkm_shared.messaging.provision import provision
from kumkm_shared.natsauth import AuthDir
from kumkm_shared.servers import EmbeddedNats
from kumkm_shared.testing.plugin import server_folder
from tests.integration.registry_import.test_import import ORG, STREAM, write_cooperatives

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

pytestmark = pytest.mark.integration

KUMKM = str(Path(sys.executable).parent / "kumkm")


def run_kumkm(
    args: Sequence[str], nats_url: str | None, auth_dir: Path, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUMKM_")}
    if nats_url:
        env["KUMKM_NATS_URL"] = nats_url
    env["KUMKM_NATS_AUTH_DIR"] = str(auth_dir)
    env["KUMKM_DATA_DIR"] = str(tmp_path / "nowhere")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    return subprocess.run([KUMKM, *args], capture_output=True, text=True, env=env, check=False, timeout=120)


@pytest.fixture
def operator_mode(tmp_path: Path) -> Iterator[tuple[EmbeddedNats, Path]]:
    auth_dir = tmp_path / "nats-auth"
    assert run_kumkm(["nats", "init", str(auth_dir)], None, auth_dir, tmp_path).returncode == 0
    with server_folder("kumkm-registry-import-") as folder:
        server = EmbeddedNats(folder, auth=AuthDir(auth_dir))
        server.start()
        try:
            yield server, auth_dir
        finally:
            server.stop()


async def test_the_organisation_imports_with_its_own_creds_and_only_as_itself(
    operator_mode: tuple[EmbeddedNats, Path], tmp_path: Path
) -> None:
    server, auth_dir = operator_mode
    operator = str(AuthDir(auth_dir).creds_path("operator"))
    nc = await nats.connect(server.url, user_credentials=operator)
    try:
        await provision(nc.jetstream())
    finally:
        await nc.drain()
    creds = tmp_path / f"{ORG}.creds"
    added = run_kumkm(
        ["integrators", "add", ORG, "--role", "registry", "--all-parties", "--creds-out", str(creds)],
        server.url,
        auth_dir,
        tmp_path,
    )
    assert added.returncode == 0, added.stderr
    path = tmp_path / "koperasi.csv"
    write_cooperatives(path, 12)

    imported = run_kumkm(
        ["registry", "import", str(path), "--as", ORG, "--creds", str(creds)], server.url, auth_dir, tmp_path
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "12 published" in imported.stdout

    # The same creds, claiming another organisation: the server refuses the subject, nothing is stored.
    other = tmp_path / "other.csv"
    write_cooperatives(other, 3)
    refused = run_kumkm(
        [
            "registry",
            "import",
            str(other),
            "--as",
            "kemenkop-odsnik",
            "--creds",
            str(creds),
            "--ack-timeout",
            "1",
        ],
        server.url,
        auth_dir,
        tmp_path,
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "not acknowledged" in refused.stderr
    assert "--resume" in refused.stderr

    nc = await nats.connect(server.url, user_credentials=operator)
    try:
        js = nc.jetstream()
        info = await js.stream_info(STREAM)
        assert info.state.messages == 12
        subjects = {(await js.get_msg(STREAM, seq)).subject for seq in range(1, 13)}
        assert subjects == {f"kumkm.registry.cooperative.registered.v1.{ORG}"}
    finally:
        await nc.drain()
