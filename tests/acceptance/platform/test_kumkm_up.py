"""`kumkm up`: everything starts, run.json tells where, SIGTERM leaves nothing running, data survives."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nats
import psutil
import pytest

from tests.support.events import loan_disbursed

pytestmark = pytest.mark.acceptance

BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUMKM_")}
    env["KUMKM_LOG_FORMAT"] = "json"
    return env


def _start(data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(BIN / "kumkm"), "up", "--data-dir", str(data_dir)],
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_run_json(
    data_dir: Path, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120
) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    path = data_dir / "run.json"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"kumkm up exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        if path.exists():
            return json.loads(path.read_text())  # type: ignore[no-any-return]
        time.sleep(0.3)
    pytest.fail(f"no run.json after {timeout}s:\n{log.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def _stream_count(url: str) -> int:
    return asyncio.run(_stream_messages(url))


async def _stream_messages(url: str) -> int:
    nc = await nats.connect(url)
    try:
        return (await nc.jetstream().stream_info("KUMKM_LOANS")).state.messages
    finally:
        await nc.drain()


def test_up_runs_everything_stops_cleanly_and_keeps_data() -> None:
    # Under /tmp/kumkm-*, not pytest's tmp_path: Postgres runs as another user (see EmbeddedPostgres).
    with tempfile.TemporaryDirectory(prefix="kumkm-up-") as tmp:
        data_dir, log = Path(tmp) / "data", Path(tmp) / "up.log"
        proc = _start(data_dir, log)
        try:
            info = _wait_run_json(data_dir, proc, log)
            services = info["services"]
            assert isinstance(services, dict)
            assert set(services) == {"loans", "catalog", "notifications"}
            for url in services.values():
                with urllib.request.urlopen(f"{url}/health/ready", timeout=5) as response:  # noqa: S310
                    assert response.status == 200
            family = [proc.pid, *(p.pid for p in psutil.Process(proc.pid).children(recursive=True))]
            names = {psutil.Process(p).name() for p in family if psutil.pid_exists(p)}
            assert "nats-server" in names
            assert "postgres" in names
            event = loan_disbursed()
            event_file = Path(tmp) / "event.json"
            event_file.write_text(json.dumps(event))
            published = subprocess.run(
                [str(BIN / "kumkm"), "publish", str(event_file), "--data-dir", str(data_dir)],
                env=_env(),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert published.returncode == 0, published.stderr
            nats_url = str(info["nats_url"])
            assert _stream_count(nats_url) >= 1
        finally:
            _stop(proc)
        assert proc.returncode == 0, log.read_text()[-4000:]
        left = [
            p for p in family if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
        ]
        assert left == [], f"still running after SIGTERM: {left}"
        assert not (data_dir / "run.json").exists()

        again = _start(data_dir, log)
        try:
            info = _wait_run_json(data_dir, again, log)
            assert _stream_count(str(info["nats_url"])) >= 1, "the stream's data survived the restart"
        finally:
            _stop(again)
        assert again.returncode == 0
