# EmbeddedNats: JetStream with fsync on every write, data kept across restarts and crashes, deploy configs.
import json
import urllib.request
from pathlib import Path

import nats
import nats.errors
import pytest

from kumkm_shared.servers import EmbeddedNats, ServerStartError

pytestmark = pytest.mark.integration


async def publish(url: str, count: int, stream: str = "ORDERS") -> None:
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
        for number in range(count):
            ack = await js.publish(f"{stream.lower()}.created", str(number).encode())
            assert ack.seq == number + 1
    finally:
        await client.close()


async def stored_messages(url: str, stream: str = "ORDERS") -> int:
    client = await nats.connect(url)
    try:
        info = await client.jsm().stream_info(stream)
        return info.state.messages
    finally:
        await client.close()


def test_starts_with_jetstream_syncing_every_write(tmp_path: Path) -> None:
    with EmbeddedNats(tmp_path) as server:
        assert server.url == f"nats://127.0.0.1:{server.port}"
        varz = server.varz()
        jetstream = varz["jetstream"]
        assert isinstance(jetstream, dict)
        assert jetstream["config"]["sync_always"] is True
        assert jetstream["config"]["store_dir"] == str(server.store_dir)
        assert varz["max_payload"] == 8 * 1024 * 1024
        assert varz["host"] == "127.0.0.1"
        assert (tmp_path / "nats.log").read_text().count("Server is ready") == 1
    assert not server.running


async def test_stream_survives_restart_and_kill(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path)
    server.start()
    try:
        await publish(server.url, 5)
        server.restart()
        assert await stored_messages(server.url) == 5
        server.kill()
        assert not server.running
        server.start()
        assert server.url.endswith(f":{server.port}")
        assert await stored_messages(server.url) == 5
    finally:
        server.stop()


async def test_deploy_config_is_included_with_local_overrides(tmp_path: Path) -> None:
    # Shaped like a deploy config: fixed ports, a container store path, a log file, accounts in a 2nd include.
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    (deploy / "accounts.conf").write_text(
        "accounts { APP { jetstream: enabled, users: [{user: loans, password: secret}] } }\n"
    )
    (deploy / "nats.conf").write_text(
        'listen: "0.0.0.0:4222"\n'
        "http_port: 8222\n"
        'log_file: "/nonexistent/nats.log"\n'
        "max_payload: 2MB\n"
        "jetstream { store_dir: /data, sync_interval: 2m, max_file_store: 1GB }\n"
        'include "accounts.conf"\n'
    )
    server = EmbeddedNats(tmp_path / "local", config_file=deploy / "nats.conf")
    with server:
        varz = server.varz()
        assert (varz["host"], varz["port"], varz["http_port"]) == (
            "127.0.0.1",
            server.port,
            server.monitor_port,
        )
        assert varz["max_payload"] == 2 * 1024 * 1024  # the deploy config's value is kept
        assert varz["auth_required"] is True
        jetstream = varz["jetstream"]
        assert isinstance(jetstream, dict)
        # The jetstream block is replaced as a whole: local store, always sync, the deploy limits dropped.
        assert jetstream["config"]["store_dir"] == str(server.store_dir)
        assert jetstream["config"]["sync_always"] is True
        assert jetstream["config"]["max_storage"] != 1024**3
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(server.url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2)
        client = await nats.connect(server.url, user="loans", password="secret")
        await client.jsm().add_stream(name="LOANS", subjects=["loans.>"])
        await client.close()


def test_failed_start_reports_the_log_tail(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path, extra_config="jetstream { store_dir: 1, unknown_field: [ }\n")
    with pytest.raises(ServerStartError, match="log tail"):
        server.start()
    assert not server.running


def test_healthz_reports_jetstream(tmp_path: Path) -> None:
    with EmbeddedNats(tmp_path) as server:
        url = f"{server.monitor_url}/healthz?js-enabled-only=true"
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
            assert json.load(response) == {"status": "ok"}


async def test_operator_mode_from_an_auth_directory(tmp_path: Path) -> None:
    from kumkm_shared.natsauth import AuthDir

    auth = AuthDir.init(tmp_path / "auth")
    server = EmbeddedNats(tmp_path / "nats", auth=auth)
    server.start()
    try:
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(server.url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=3)
        client = await nats.connect(server.url, user_credentials=str(auth.creds_path("operator")))
        try:
            await client.jetstream().add_stream(name="ORDERS", subjects=["orders.>"])
            assert (await client.jetstream().publish("orders.created", b"1")).seq == 1
        finally:
            await client.close()
        # The full resolver keeps its JWTs under the data folder.
        assert server.resolver_dir.is_dir()
    finally:
        server.stop()
