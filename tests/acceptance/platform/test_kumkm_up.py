"""`kumkm up`: everything starts (the OpenID provider too), run.json tells where, services accept the demo
users' tokens from `kumkm token --as`, SIGTERM leaves nothing running, data survives; `--demo` runs the
Kranggan story signed in as the demo users."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import nats
import nats.errors
import psutil
import pytest

from kumkm_shared.cli.seed import generate
from kumkm_shared.cli.up import installed_services, ready_path
from kumkm_shared.servers.oidc import DEFAULT_REALM
from tests.support.events import loan_disbursed

pytestmark = pytest.mark.acceptance

BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUMKM_")}
    env["KUMKM_LOG_FORMAT"] = "json"
    return env


def _start(data_dir: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(BIN / "kumkm"), "up", "--data-dir", str(data_dir), *extra],
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


def _kumkm(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(BIN / "kumkm"), *args, "--data-dir", str(data_dir)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def _get(url: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as refused:
        return refused.code


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def _stream_count(info: dict[str, object]) -> int:
    """Messages on KUMKM_LOANS, read as the operator (NATS runs in operator mode: run.json's auth dir)."""
    creds = Path(str(info["nats_auth_dir"])) / "creds" / "operator.creds"
    return asyncio.run(_stream_messages(str(info["nats_url"]), creds))


async def _stream_messages(url: str, creds: Path) -> int:
    nc = await nats.connect(url.split(","), user_credentials=str(creds))
    try:
        return (await nc.jetstream().stream_info("KUMKM_LOANS")).state.messages
    finally:
        await nc.drain()


def _assert_every_service_ready(services: dict[str, str], log: Path) -> None:
    """Every installed service runs: loans, catalog, notifications, monitoring, and the console."""
    assert set(services) == set(installed_services())
    assert {"loans", "catalog", "notifications", "console"} <= set(services)
    for name, url in services.items():
        with urllib.request.urlopen(f"{url}{ready_path(name)}", timeout=5) as response:  # noqa: S310
            assert response.status == 200
    assert "console: http://127.0.0.1:" in log.read_text()


def _recovery(url: str, token: str, kind: str) -> list[dict[str, object]]:
    query = urllib.parse.urlencode({"province": "Jawa Barat", "city": "Kota Bekasi", "kind": kind})
    request = urllib.request.Request(  # noqa: S310 - our http URL
        f"{url}/recovery?{query}&level=district", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        rows: list[dict[str, object]] = json.loads(response.read())["rows"]
        return rows


def _assert_the_dashboard_counts_the_sample(data_dir: Path, timeout: float = 120) -> None:
    """The Kota Bekasi viewer's recovery figures by kecamatan count exactly the sample's parties (computed
    here from the generator, not from the service), with some but not 65% of them productive yet."""
    sample = generate()
    info = json.loads((data_dir / "run.json").read_text())
    token = _kumkm("token", "--as", "city.bekasi", data_dir=data_dir).stdout.strip()
    for kind in ("cooperative", "umkm"):
        expected = {
            name: sum(
                1 for p in sample.parties if p.kind == kind and p.district.name == name and not p.closed_on
            )
            for name in sample.counts_by_district(kind)
        }
        deadline = time.monotonic() + timeout
        while True:
            rows = _recovery(info["services"]["monitoring"], token, kind)
            got = {str(r["district"]): int(str(r["registered"])) for r in rows}
            if got == expected or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert got == expected, kind
        registered = sum(int(str(r["registered"])) for r in rows)
        productive = sum(int(str(r["productive"])) for r in rows)
        assert 0 < productive < registered * 65 // 100, (kind, productive, registered)


def test_up_runs_everything_stops_cleanly_and_keeps_data() -> None:
    # Under /tmp/kumkm-*, not pytest's tmp_path: Postgres runs as another user (see EmbeddedPostgres).
    with tempfile.TemporaryDirectory(prefix="kumkm-up-") as tmp:
        data_dir, log = Path(tmp) / "data", Path(tmp) / "up.log"
        proc = _start(data_dir, log)
        try:
            info = _wait_run_json(data_dir, proc, log)
            services = info["services"]
            assert isinstance(services, dict)
            _assert_every_service_ready(services, log)
            family = [proc.pid, *(p.pid for p in psutil.Process(proc.pid).children(recursive=True))]
            names = {psutil.Process(p).name() for p in family if psutil.pid_exists(p)}
            assert "nats-server" in names
            assert "postgres" in names
            assert "node" in names, "the embedded OpenID provider runs"
            issuer = str(info["auth_issuer"])
            assert issuer.startswith("http://127.0.0.1:")
            assert info["auth_realm"] == str(DEFAULT_REALM)
            token = _kumkm("token", "--as", "officer.bekasi", data_dir=data_dir).stdout.strip()
            loans = f"{services['loans']}/restructurings"
            assert _get(loans, token) == 200, "the services accept the provider's tokens"
            assert _get(loans, None) == 401
            printed = log.read_text()
            assert "officer.bekasi: loans-officer [Jawa Barat/Kota Bekasi]" in printed
            assert "kumkm-demo" not in printed, "the demo password is in the README, not the log"
            assert token not in printed
            event = loan_disbursed()
            event_file = Path(tmp) / "event.json"
            event_file.write_text(json.dumps(event))
            published = subprocess.run(
                [
                    str(BIN / "kumkm"),
                    "publish",
                    str(event_file),
                    "--as",
                    "lpdb-kumkm",
                    "--data-dir",
                    str(data_dir),
                ],
                env=_env(),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert published.returncode == 0, published.stderr
            assert _stream_count(info) >= 1
            with pytest.raises(nats.errors.Error, match="Authorization Violation"):
                asyncio.run(
                    nats.connect(str(info["nats_url"]), allow_reconnect=False, max_reconnect_attempts=0)
                )
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
            assert _stream_count(info) >= 1, "the stream's data survived the restart"
        finally:
            _stop(again)
        assert again.returncode == 0


def test_up_demo_signs_in_as_the_demo_users() -> None:
    with tempfile.TemporaryDirectory(prefix="kumkm-up-") as tmp:
        data_dir, log = Path(tmp) / "data", Path(tmp) / "up.log"
        proc = _start(data_dir, log, "--demo")
        try:
            _wait_run_json(data_dir, proc, log)
            deadline = time.monotonic() + 180
            while "demo done" not in log.read_text() and "demo failed" not in log.read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the demo did not finish:\n{log.read_text()[-4000:]}")
                time.sleep(0.5)
            printed = log.read_text()
            assert "demo failed" not in printed, printed[-4000:]
            assert "seed failed" not in printed, printed[-4000:]
            assert "seed: 647 cooperatives, 3000 UMKM in 12 kecamatan" in printed
            assert "published as disdagkop-bekasi" in printed
            assert "8 delivered and paid now" in printed
            assert "seed: sale " not in printed, "no sale was refused"
            for step in (
                "→ operator PUT /contacts/",
                "→ officer.bekasi POST /restructurings",
                "answered 200 awaiting_second_approval",  # the large loan: the officer is the maker
                "→ supervisor.bekasi POST /restructurings/RR-DEMO-",  # and the supervisor the checker
                "→ integrator-demo POST /products",
                "→ curator.bekasi POST /products/PRD-DEMO-",
                "→ integrator-demo POST /orders",
                "answered 200 paid",
            ):
                assert step in printed, step
            assert "it-all" not in printed, "no superuser takes part"
            auditor = _kumkm("token", "--as", "auditor", data_dir=data_dir).stdout.strip()
            records = json.loads(
                subprocess.run(
                    [str(BIN / "kumkm"), "--token", auditor, "audit", "--json", "--data-dir", str(data_dir)],
                    env=_env(),
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=True,
                ).stdout
            )
            actors = {
                (r["service"], r["subject"]) for r in records if r["status"] is None or r["status"] < 400
            }
            assert ("loans", "officer.bekasi") in actors
            assert ("loans", "supervisor.bekasi") in actors
            assert ("catalog", "curator.bekasi") in actors
            assert ("catalog", "service-account-integrator-demo") in actors
            assert ("notifications", "operator") in actors
            _assert_the_dashboard_counts_the_sample(data_dir)
        finally:
            _stop(proc)
        assert proc.returncode == 0, log.read_text()[-4000:]


async def _stream_replicas(url: str, creds: Path) -> dict[str, int]:
    nc = await nats.connect(url.split(","), user_credentials=str(creds))
    try:
        js = nc.jetstream()
        found = {}
        for stream in ("KUMKM_LOANS", "KUMKM_CATALOG", "KUMKM_NOTIFICATIONS", "KUMKM_DLQ"):
            info = await js.stream_info(stream)
            found[stream] = 1 + len(info.cluster.replicas or []) if info.cluster else 1
        return found
    finally:
        await nc.drain()


def test_up_cluster_runs_the_cluster_topology_and_stops_cleanly() -> None:
    """``kumkm up --cluster``: three NATS nodes with R3 streams, a Postgres primary and a synchronous
    standby behind a multi-host DSN, two replicas of each service; a service's replica killed is restarted
    by the supervisor while the other serves; SIGTERM leaves nothing running."""
    with tempfile.TemporaryDirectory(prefix="kumkm-up-") as tmp:
        data_dir, log = Path(tmp) / "data", Path(tmp) / "up.log"
        proc = _start(data_dir, log, "--cluster", "--services", "loans,catalog,notifications")
        family: list[int] = []
        try:
            info = _wait_run_json(data_dir, proc, log, timeout=240)
            services = info["services"]
            assert isinstance(services, dict)
            expected = {f"{s}{r}" for s in ("loans", "catalog", "notifications") for r in ("", "#2")}
            assert set(services) == expected
            for name, url in services.items():
                with urllib.request.urlopen(f"{url}{ready_path(name)}", timeout=5) as response:  # noqa: S310
                    assert response.status == 200, name
            nats_urls = str(info["nats_url"]).split(",")
            assert len(nats_urls) == 3
            dsn = str(info["database_url"])
            assert "target_session_attrs=read-write" in dsn
            assert dsn.split("@", 1)[1].split("/", 1)[0].count(",") == 1, "two Postgres hosts"
            creds = Path(str(info["nats_auth_dir"])) / "creds" / "operator.creds"
            replicas = asyncio.run(_stream_replicas(str(info["nats_url"]), creds))
            assert set(replicas.values()) == {3}, replicas
            family = [proc.pid, *(p.pid for p in psutil.Process(proc.pid).children(recursive=True))]
            names = [psutil.Process(p).name() for p in family if psutil.pid_exists(p)]
            assert names.count("nats-server") == 3

            token = _kumkm("token", "--as", "officer.bekasi", data_dir=data_dir).stdout.strip()
            for name in ("loans", "loans#2"):
                assert _get(f"{services[name]}/restructurings", token) == 200, name
            # kill -9 of the second replica: the first answers meanwhile, the supervisor starts it again.
            second = next(
                p
                for p in psutil.Process(proc.pid).children()
                if any(arg == "kumkm_loans" for arg in p.cmdline()) and _port_of(p) == services["loans#2"]
            )
            os.killpg(second.pid, signal.SIGKILL)
            assert _get(f"{services['loans']}/restructurings", token) == 200
            deadline = time.monotonic() + 90
            while _ready_status(f"{services['loans#2']}{ready_path('loans')}") != 200:
                assert time.monotonic() < deadline, f"loans#2 not restarted:\n{log.read_text()[-3000:]}"
                time.sleep(0.5)
            family = [proc.pid, *(p.pid for p in psutil.Process(proc.pid).children(recursive=True))]
        finally:
            _stop(proc)
        assert proc.returncode == 0, log.read_text()[-4000:]
        left = [
            p for p in family if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
        ]
        assert left == [], f"still running after SIGTERM: {left}"


def _ready_status(url: str) -> int | None:
    """The status of a GET, or None while nothing listens there."""
    try:
        return _get(url, None)
    except OSError:
        return None


def _port_of(process: psutil.Process) -> str:
    """The URL a service child listens at (its KUMKM_HTTP_PORT)."""
    return f"http://127.0.0.1:{process.environ().get('KUMKM_HTTP_PORT')}"
