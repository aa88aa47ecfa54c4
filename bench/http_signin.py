"""What sign-in costs over HTTP: requests/s of a service process with a real, verified token on each request.

    python bench/http_signin.py                      # this build: tokens verified, commands audited
    <previous release>/.venv/bin/python bench/http_signin.py   # a build before sign-in: no token at all

The script is the same for both builds; it looks for ``kumkm_shared.servers.oidc`` to tell which one it runs
under. To compare, run it with the interpreter of a checkout of the release before sign-in (``git worktree
add``, ``make install``) and with this one, one after the other on the same machine, and divide: a figure
from another day or machine is no comparison. Each run starts its own NATS and Postgres (embedded), and, with
sign-in, the embedded OpenID provider; loans and catalog run as their own processes, as in production.

Measured, ``CONCURRENCY`` requests in flight: ``GET /loans/{id}`` as officer.bekasi (a read: token verified,
nothing audited) and ``POST /products`` as the integrator-demo service account (a command: token verified,
the audit record written in the command's transaction). Prints each round and the medians.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import nats

from kumkm_shared.contracts import make_event
from kumkm_shared.messaging.provision import provision
from kumkm_shared.servers import free_port, obtain_servers

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.chaos.workload import disbursement, product

SIGNIN = importlib.util.find_spec("kumkm_shared.servers.oidc") is not None
# A build with integrator organisations: the disbursements come from the lender's organisation (on
# ``<type>.<organisation>``), and the service account acts for its organisation's mandate.
MANDATES = importlib.util.find_spec("kumkm_shared.mandates") is not None
LENDER_ORG = "lpdb-kumkm-bench"
SELLER_NIB = "9100000000001"
N_LOANS = 200
CONCURRENCY = 16
READS = 3000
WRITES = 1500
ROUNDS = 5
DEMO_PASSWORD = "kumkm-demo"  # noqa: S105 - the demo realm's, as the README names it
INTEGRATOR_SECRET = "integrator-demo-secret"  # noqa: S105 - the demo realm's service account

Call = tuple[str, str, dict[str, Any] | None]


def start(name: str, env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    variables = {
        **os.environ,
        **env,
        "KUMKM_HTTP_PORT": str(port),
        "KUMKM_HTTP_HOST": "127.0.0.1",
        "KUMKM_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    if name == "loans":
        variables["KUMKM_LOANS_DAILY_TICK"] = "false"
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", f"kumkm_{name}", "serve"],
            env=variables,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def ready(port: int) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the service on port {port} is not ready after 90 s")


async def load(client: httpx.AsyncClient, calls: list[Call], ok: int) -> float:
    """Requests/s for ``calls`` with ``CONCURRENCY`` in flight; every answer must be ``ok``."""
    pending = iter(calls)
    bad: list[str] = []

    async def worker() -> None:
        for method, url, body in pending:
            response = await client.request(method, url, json=body)
            if response.status_code != ok:
                bad.append(f"{response.status_code} {response.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    if bad:
        raise RuntimeError(f"{len(bad)} unexpected answers, first: {bad[0]}")
    return len(calls) / elapsed


async def headers(issuer: str | None) -> tuple[dict[str, str], dict[str, str]]:
    if issuer is None:
        return {}, {}
    from kumkm_shared.auth import client as oidc

    officer = await oidc.password_token(issuer, "kumkm-cli", "officer.bekasi", DEMO_PASSWORD)
    integrator = await oidc.client_credentials_token(issuer, "integrator-demo", INTEGRATOR_SECRET)
    return {"Authorization": f"Bearer {officer.bearer}"}, {"Authorization": f"Bearer {integrator.bearer}"}


async def measure(loans_url: str, catalog_url: str, issuer: str | None, loans: list[str]) -> None:
    officer, integrator = await headers(issuer)
    async with (
        httpx.AsyncClient(timeout=30, headers=officer) as reader,
        httpx.AsyncClient(timeout=30, headers=integrator) as writer,
    ):
        deadline = time.monotonic() + 60
        while (await reader.get(f"{loans_url}/loans/{loans[-1]}")).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the loans service did not take in the loan book within 60 s")
            await asyncio.sleep(0.3)

        def reads(n: int) -> list[Call]:
            return [("GET", f"{loans_url}/loans/{loans[i % len(loans)]}", None) for i in range(n)]

        def writes(tag: str, n: int) -> list[Call]:
            url = f"{catalog_url}/products"
            return [
                ("POST", url, product(f"PRD-{tag}-{i}", SELLER_NIB).model_dump(mode="json")) for i in range(n)
            ]

        await load(reader, reads(300), 200)  # warm-up
        await load(writer, writes("W", 200), 201)
        read_rates, write_rates = [], []
        for round_ in range(1, ROUNDS + 1):
            read_rates.append(await load(reader, reads(READS), 200))
            write_rates.append(await load(writer, writes(str(round_), WRITES), 201))
            print(
                f"round {round_}: GET /loans/{{id}} {read_rates[-1]:.0f}/s, "
                f"POST /products {write_rates[-1]:.0f}/s"
            )
    build = "with sign-in" if SIGNIN else "without sign-in"
    print(
        f"{build} ({platform.machine()}, {os.cpu_count()} cores): medians GET /loans/{{id}} "
        f"{statistics.median(read_rates):.0f} requests/s, "
        f"POST /products {statistics.median(write_rates):.0f} requests/s, {CONCURRENCY} in flight"
    )


async def record_mandates(nc: Any) -> str:
    """The lender's and the integrator service account's mandates; returns the lender's organisation."""
    from kumkm_shared.integrators import IntegratorRole
    from kumkm_shared.mandates import Grant, Mandate, MandateBook

    book = MandateBook(nc.jetstream())
    for org, role, party in (
        (LENDER_ORG, IntegratorRole.LENDER, "LPDB-KUMKM"),
        ("integrator-demo", IntegratorRole.SELLER, SELLER_NIB),
    ):
        grants = (Grant(role=role, parties=(party,)),)
        await book.put(Mandate(organisation=org, grants=grants, granted_by="bench"))
    return LENDER_ORG


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="kumkm-http-signin-"))
    handle = obtain_servers(tmp, fsync=False, mode="embedded")
    env = {"KUMKM_NATS_URL": handle.nats_url, "KUMKM_DATABASE_URL": handle.database_url}
    provider: Any = None
    processes: list[subprocess.Popen[bytes]] = []
    try:
        if SIGNIN:
            from kumkm_shared.servers.oidc import EmbeddedIdentityProvider

            provider = EmbeddedIdentityProvider(tmp / "oidc")
            provider.start()
            env["KUMKM_AUTH_ISSUER"] = provider.issuer
        nc = await nats.connect(handle.nats_url)
        await provision(nc.jetstream())
        subject = await record_mandates(nc) if MANDATES else None
        ports = {"loans": free_port(), "catalog": free_port()}
        processes = [start(name, env, port, tmp / f"{name}.log") for name, port in ports.items()]
        for port in ports.values():
            ready(port)
        loans = [f"LN-H-{i:05d}" for i in range(N_LOANS)]
        for loan_id in loans:
            event = make_event(disbursement(loan_id, "3275000000000001"), source="urn:bench")
            await nc.jetstream().publish(
                f"{event.type}.{subject}" if subject else event.type,
                event.to_json_bytes(),
                headers={"Nats-Msg-Id": event.msg_id},
            )
        await nc.drain()
        issuer = provider.issuer if provider is not None else None
        await measure(
            f"http://127.0.0.1:{ports['loans']}", f"http://127.0.0.1:{ports['catalog']}", issuer, loans
        )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(15)
        if provider is not None:
            provider.stop()
        handle.stop()


if __name__ == "__main__":
    asyncio.run(main())
