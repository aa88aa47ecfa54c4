"""Notification delivery rates and end-to-end latency, against real NATS, Postgres, SMTP and HTTP servers.

    python bench/notifications_delivery.py [--events 2000] [--rate 100] [--seconds 20]

Starts embedded NATS and Postgres (``obtain_servers``), an aiosmtpd SMTP sink and an HTTP webhook sink
(each in its own thread), and the notifications service in-process. Then:

1. email throughput: EVENTS ``restructuring.approved`` events for a party with the email channel are put on
   the stream at once; the rate is notifications received by the SMTP sink per second, from the first
   publish to the last email (consumption, rendering, the delivery table and SMTP included);
2. webhook throughput: the same for a party with a signed webhook;
3. latency: events published at a steady RATE per second for SECONDS; for each, the time from publishing
   ``restructuring.approved`` to the email arriving at the sink; prints p50, p99 and the maximum.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nats
import uvicorn
from aiosmtpd.controller import Controller
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kumkm_notifications.app import build
from kumkm_notifications.handlers import delivery_id
from kumkm_notifications.settings import NotificationsSettings
from kumkm_shared import InfraSettings, ServiceRuntime
from kumkm_shared.contracts import Channel, ContactUpserted, RestructuringApproved, make_event
from kumkm_shared.messaging.provision import provision
from kumkm_shared.servers import free_port, obtain_servers
from kumkm_shared.servers.oidc import EmbeddedIdentityProvider

if TYPE_CHECKING:
    from uuid import UUID

    from nats.aio.client import Client
    from starlette.requests import Request

EMAIL_PARTY = "3275010203040001"
WEBHOOK_PARTY = "3275010203040002"


class Arrivals:
    """Arrival time of each delivery id (thread-safe: the sinks run in their own threads)."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, ident: str) -> None:
        now = time.perf_counter()
        with self._lock:
            self.at.setdefault(ident, now)

    def count(self) -> int:
        with self._lock:
            return len(self.at)


class SmtpSink:
    def __init__(self, arrivals: Arrivals) -> None:
        self.arrivals = arrivals

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802, ARG002 - aiosmtpd hook
        content: bytes = envelope.content
        for line in content.split(b"\r\n", 40):
            if line.lower().startswith(b"x-kumkm-delivery:"):
                self.arrivals.add(line.split(b":", 1)[1].strip().decode())
                break
        return "250 2.0.0 OK"


def webhook_server(arrivals: Arrivals, port: int) -> uvicorn.Server:
    async def hook(request: Request) -> Response:
        await request.body()
        arrivals.add(request.headers["idempotency-key"])
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off"
        )
    )
    threading.Thread(target=server.run, daemon=True, name="webhook-sink").start()
    return server


def approved(party_id: str, i: int) -> RestructuringApproved:
    return RestructuringApproved.model_validate(
        {
            "request_id": f"RR-BENCH-{party_id[-1]}-{i}",
            "loan_id": f"LN-BENCH-{i}",
            "borrower": {
                "kind": "cooperative",
                "id": party_id,
                "name": "Koperasi Pedagang Pasar Kranggan",
                "region": {"province": "Jawa Barat", "city": "Kota Bekasi"},
            },
            "decided_by": "policy",
            "decided_at": "2020-05-05T03:00:00Z",
            "terms": [{"scheme": "tenor_extension", "extra_months": 12}],
            "reschedule_from": "2020-06-15",
            "summary": {
                "installments": 60,
                "regular_installment": "48330000.00",
                "grace_months": 0,
                "annual_rate": "0.06",
                "first_due_on": "2020-06-15",
                "maturity_on": "2026-11-26",
                "outstanding_principal": "2500000000.00",
                "total_interest_before": "400000000.00",
                "total_interest_after": "455000000.00",
            },
        }
    )


async def publish(nc: Client, party_id: str, i: int) -> tuple[UUID, float]:
    envelope = make_event(approved(party_id, i), source="bench")
    started = time.perf_counter()
    await nc.jetstream().publish(
        envelope.type, envelope.to_json_bytes(), headers={"Nats-Msg-Id": str(envelope.id)}
    )
    return envelope.id, started


async def wait_count(arrivals: Arrivals, target: int, within: float) -> None:
    deadline = time.monotonic() + within
    while arrivals.count() < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {arrivals.count()} of {target} notifications arrived in {within}s")
        await asyncio.sleep(0.01)


async def throughput(nc: Client, arrivals: Arrivals, party_id: str, events: int, channel: Channel) -> float:
    before = arrivals.count()
    started = time.perf_counter()
    pending = [
        await nc.jetstream().publish_async(
            RestructuringApproved.event_type,
            make_event(approved(party_id, i), source="bench").to_json_bytes(),
        )
        for i in range(events)
    ]
    await asyncio.gather(*pending)
    await wait_count(arrivals, before + events, within=600)
    elapsed = time.perf_counter() - started
    rate = events / elapsed
    print(f"{channel.value:>8}: {events} notifications in {elapsed:.2f} s = {rate:,.0f} delivered/s")
    return rate


async def latency(nc: Client, arrivals: Arrivals, rate: float, seconds: float) -> list[float]:
    total = int(rate * seconds)
    sent: list[tuple[str, float]] = []
    origin = time.perf_counter()
    for i in range(total):
        # Publish on a fixed schedule (not "sleep after each"), so slow publishes do not lower the rate.
        delay = origin + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        event_id, at = await publish(nc, EMAIL_PARTY, 1_000_000 + i)
        sent.append((str(delivery_id(event_id, EMAIL_PARTY, Channel.EMAIL)), at))
    achieved = total / (time.perf_counter() - origin)
    deadline = time.monotonic() + 120
    while any(d not in arrivals.at for d, _ in sent):
        if time.monotonic() > deadline:
            raise TimeoutError("not every latency-run email arrived within 120 s")
        await asyncio.sleep(0.05)
    waits = sorted(arrivals.at[d] - at for d, at in sent)
    p50 = statistics.quantiles(waits, n=100)[49]
    p99 = statistics.quantiles(waits, n=100)[98]
    print(
        f" latency: {total} events at {achieved:.0f}/s, published -> email received: "
        f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {waits[-1] * 1000:.0f} ms"
    )
    return waits


async def run(args: argparse.Namespace, nats_url: str, database_url: str) -> None:
    # FastStream logs two lines per message at INFO; at these rates that is most of the CPU.
    logging.disable(logging.INFO)
    arrivals = Arrivals()
    smtp = Controller(SmtpSink(arrivals), hostname="127.0.0.1", port=free_port())
    smtp.start()
    hook_port = free_port()
    hooks = webhook_server(arrivals, hook_port)
    while not hooks.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.01)
    nc = await nats.connect(nats_url)
    await provision(nc.jetstream())
    settings = NotificationsSettings(
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        worker_concurrency=args.concurrency,
        worker_poll_interval=0.2,
    )
    runtime = ServiceRuntime(
        build(settings), InfraSettings(nats_url=nats_url, database_url=SecretStr(database_url))
    )
    await runtime.start()
    try:
        for party, fields in (
            (EMAIL_PARTY, {"email": "pengurus@kranggan.coop.id", "channels": ["email"]}),
            (WEBHOOK_PARTY, {"webhook_url": f"http://127.0.0.1:{hook_port}/hook", "channels": ["webhook"]}),
        ):
            contact = ContactUpserted.model_validate(
                {
                    "party_id": party,
                    "name": "Koperasi Pedagang Pasar Kranggan",
                    "updated_at": "2020-01-01T00:00:00Z",
                }
                | fields
            )
            await runtime.submit(contact, consumer="notifications-contacts")
        print(
            f"python {platform.python_version()} on {platform.machine()}, {platform.system()}; "
            f"{args.concurrency} sends in flight"
        )
        await throughput(nc, arrivals, EMAIL_PARTY, args.events, Channel.EMAIL)
        await throughput(nc, arrivals, WEBHOOK_PARTY, args.events, Channel.WEBHOOK)
        await latency(nc, arrivals, args.rate, args.seconds)
    finally:
        await runtime.stop()
        await nc.drain()
        smtp.stop()
        hooks.should_exit = True


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=2000, help="notifications per throughput run")
    parser.add_argument("--rate", type=float, default=100.0, help="events per second in the latency run")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the latency run")
    parser.add_argument("--concurrency", type=int, default=32, help="sends in flight")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="kumkm-bench-") as tmp,
        obtain_servers(Path(tmp)) as servers,
        EmbeddedIdentityProvider(Path(tmp) / "oidc") as provider,
        contextlib.suppress(KeyboardInterrupt),
    ):
        # The service verifies tokens from the embedded provider, set as a deployment sets it: by environment.
        os.environ["KUMKM_AUTH_ISSUER"] = provider.issuer
        asyncio.run(run(args, servers.nats_url, servers.database_url))


if __name__ == "__main__":
    main()
