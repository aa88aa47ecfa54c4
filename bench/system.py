"""The whole system under load: three services, NATS and Postgres, with a bare nats-py + asyncpg baseline.

    python -m bench.system [--backlog 3000] [--rates 100,500,1000] [--rate-seconds 10]

1. Saturation: a backlog of mixed integrator events (disbursements, repayments, restructuring requests,
   orders, contact upserts) is published at once; the figure is events/s until every consumer is idle,
   every outbox published and every notification delivered to the SMTP and webhook sinks.
2. Fixed rates: an open-loop generator publishes the mix (plus order lifecycles, product submissions and
   curations over HTTP) at 100, 500 and 1,000 events/s; the latency of an event is from its publish to its
   last consequence, the last email or webhook it caused reaching a sink (matched through the delivery's
   correlation id).
3. Peak RSS of each service (psutil, sampled every 0.5 s through the whole run).
4. Baselines, in the same run, each drawing the same mix as the saturation run, through raw nats-py and
   asyncpg only:
   - equivalent work (the ratio the goal is judged on, ``baseline_equivalent``): the reads, writes and
     sends the services make per event: every event consumed with inbox and state (loans, catalog,
     contacts), an outcome event through the outbox for each restructuring request and order, a second
     consumer of restructuring requests and disbursements (as notifications has), and for the request
     and each outcome three delivery rows (email, webhook, inbox), an inbox message and receipts, the
     email and webhook claimed, sent and recorded; a relay publishes every outbox row;
   - minimal (``baseline``, kept for comparison with earlier figures): a pull consumer per event writes
     inbox, state and outbox in one transaction and acks; a bare relay publishes the outbox; a bare
     notifier consumes the outcomes, records a delivery and sends one email (a new SMTP connection each)
     and one webhook. It does about half the sends of the system and none of its inbox or receipt work.

The outbox relay's rate from a backlog is measured by ``bench/outbox_relay.py`` (``make bench`` runs both).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import uuid4

if __package__ in {None, ""}:  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiosmtplib
import asyncpg
import httpx
import nats
import nats.errors
import psutil
from nats.js import api

from bench.chaos.checker import Checker
from bench.chaos.cluster import Cluster, ClusterConfig
from bench.chaos.orgs import Org, record_mandates
from bench.chaos.scenario import Scenario
from bench.chaos.services import SERVICES
from bench.chaos.signin import CURATOR, INTEGRATOR
from bench.chaos.sinks import SmtpSink, WebhookSink
from bench.chaos.workload import (
    Api,
    Integrator,
    Ledger,
    contact,
    disbursement,
    lifecycle,
    order,
    product,
    repayment,
    restructuring,
)
from kumkm_shared.contracts import EventData, make_event
from kumkm_shared.integrators import IntegratorRole

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from nats.aio.client import Client
    from nats.js import JetStreamContext

GOAL_RATIO = 0.60
GOAL_P99_MS = 100.0
GOAL_RSS_MB = 200.0


@dataclass
class World:
    """What the generator can refer to: parties, loans on the book, listed products, open orders."""

    coops: list[str]
    sellers: list[str]
    buyers: list[str]
    loans: list[tuple[str, str]] = field(default_factory=list)  # (loan id, borrower)
    unrequested: list[str] = field(default_factory=list)  # loans without a restructuring request yet
    products: list[tuple[str, str]] = field(default_factory=list)  # (product id, seller)
    borrowers: dict[str, str] = field(default_factory=dict)  # loan id -> borrower, of the loans above
    n: int = 0

    def next(self) -> int:
        self.n += 1
        return self.n


class Mix:
    """The mixed integrator events, in proportions close to a working day."""

    WEIGHTS = (
        ("disbursed", 10),
        ("repayment", 30),
        ("restructuring", 15),
        ("order", 25),
        ("contact", 20),
    )

    def __init__(self, world: World, hook_url: str, tag: str) -> None:
        self.world = world
        self.hook_url = hook_url
        self.tag = tag
        self.i = 0
        self.wheel = [k for k, w in self.WEIGHTS for _ in range(w)]

    def event(self) -> tuple[str, EventData]:
        w = self.world
        self.i += 1
        kind = self.wheel[(self.i * 37) % len(self.wheel)]
        n = w.next()
        if kind == "disbursed" or (kind in {"repayment", "restructuring"} and not w.loans):
            borrower = w.coops[n % len(w.coops)]
            loan_id = f"LN-{self.tag}-{n:06d}"
            return kind, disbursement(loan_id, borrower)
        if kind == "repayment":
            loan_id, _ = w.loans[n % len(w.loans)]
            return kind, repayment(f"PAY-{self.tag}-{n:06d}", loan_id, date(2020, 3, 1), "1000000.00")
        if kind == "restructuring" and w.unrequested:
            loan_id = w.unrequested.pop()
            return kind, restructuring(f"RR-{self.tag}-{n:06d}", loan_id)
        if kind == "order" and w.products:
            product_id, _seller = w.products[n % len(w.products)]
            return "order", order(f"ORD-{self.tag}-{n:06d}", w.buyers[n % len(w.buyers)], product_id, 2)
        party = w.coops[n % len(w.coops)]
        return "contact", contact(party, "cooperative", f"Koperasi {party[-5:]}", self.hook_url)


# ------------------------------------------------------------------------------------------------------
# the system


async def bare_relay_batch(pool: Any, js: Any, schema: str) -> int:
    """The bare baseline's outbox relay: one claimed window published and marked; returns its size."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            f"SELECT id, event_id, subject, payload FROM {schema}.outbox WHERE published_at IS NULL "
            "ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED"
        )
        if rows:
            futures = [
                await js.publish_async(
                    r["subject"], r["payload"], headers={"Nats-Msg-Id": str(r["event_id"])}
                )
                for r in rows
            ]
            await asyncio.gather(*futures)
            await conn.execute(
                f"UPDATE {schema}.outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                [r["id"] for r in rows],
            )
    return len(rows)


def senders(scenario: Scenario, world: World) -> Callable[[EventData], Org]:
    """Who sends each event of the mix: the organisation holding the mandate for the party it claims."""
    orgs = scenario.senders
    return lambda data: orgs.sender_for(data, world.borrowers.__getitem__)


async def publish_all(
    integrator: Integrator,
    events: list[EventData],
    sender: Callable[[EventData], Org],
    concurrency: int = 64,
) -> dict[str, float]:
    """Publish as fast as the broker acknowledges, each as its organisation; returns event id -> time."""
    js = integrator.js
    if js is None:
        raise RuntimeError("not connected")
    sent: dict[str, float] = {}
    queue = list(events)
    queue.reverse()

    async def worker() -> None:
        while queue:
            data = queue.pop()
            env = make_event(data, source="urn:integrator:bench")
            subject = sender(data).subject(env.type)
            sent[env.msg_id] = time.time()
            await integrator.publish_raw(subject, env.to_json_bytes(), {"Nats-Msg-Id": env.msg_id})

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sent


async def rss_sampler(cluster: Cluster, stop: asyncio.Event) -> None:
    while not stop.is_set():
        cluster.sample_rss()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def latencies(
    database_url: str, sent: dict[str, float], smtp: SmtpSink, hooks: WebhookSink
) -> list[float]:
    """Per integrator event that caused notifications: ms from publish to its last delivery received."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT id::text AS id, correlation_id, channel FROM notifications.deliveries "
            "WHERE channel IN ('email', 'webhook') AND correlation_id = ANY($1::text[])",
            list(sent),
        )
    finally:
        await conn.close()
    emails, webhooks = smtp.receipts.snapshot(), hooks.receipts.snapshot()
    last: dict[str, float] = {}
    missing = 0
    for r in rows:
        got = (emails if r["channel"] == "email" else webhooks).get(r["id"])
        if not got:
            missing += 1
            continue
        corr = r["correlation_id"]
        last[corr] = max(last.get(corr, 0.0), got[0])
    if missing:
        print(f"    ({missing} deliveries not received in time; left out of the latencies)")
    return [(t - sent[c]) * 1000 for c, t in last.items() if c in sent]


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


async def prepare_world(
    scenario: Scenario, api: Api, integrator: Integrator, tag: str, checker: Checker
) -> World:
    # Each organisation with an explicit mandate for the parties it acts for (setup_parties records them),
    # and the integrator's service account, submitting products over HTTP, for the world's sellers.
    await scenario.setup_parties(40, 20, 20, offset=0)
    p = scenario.parties
    if integrator.js is None:
        raise RuntimeError("not connected")
    await record_mandates(integrator.js, [Org(INTEGRATOR, IntegratorRole.SELLER, tuple(p.sellers))])
    world = World(p.coops, p.sellers, p.buyers)
    sender = senders(scenario, world)
    # loans on the book, and listed products with plenty of stock
    loans = [(f"LN-{tag}-BASE-{i:04d}", p.coops[i % len(p.coops)]) for i in range(400)]
    await publish_all(integrator, [disbursement(loan_id, b) for loan_id, b in loans], sender)
    world.loans = loans
    world.borrowers = dict(loans)
    world.unrequested = [loan_id for loan_id, _ in loans]
    products = [(f"PRD-{tag}-{i:03d}", p.sellers[i % len(p.sellers)]) for i in range(20)]
    await publish_all(integrator, [product(pid, s, stock=1_000_000) for pid, s in products], sender)
    for pid, _ in products:
        await scenario.wait_state("catalog", f"/products/{pid}", "status", {"pending_curation"})
        await api.command(
            "catalog",
            "POST",
            f"/products/{pid}/curation",
            {"decision": "approved", "tier": "local"},
            label=pid,
            who=CURATOR,
        )
    world.products = products
    await checker.wait_quiet(120)
    return world


async def saturation(
    integrator: Integrator,
    mix: Mix,
    checker: Checker,
    backlog: int,
    sender: Callable[[EventData], Org],
) -> tuple[float, float]:
    events = [mix.event()[1] for _ in range(backlog)]
    t0 = time.monotonic()
    await publish_all(integrator, events, sender)
    published = time.monotonic() - t0
    await checker.wait_quiet(600, settle=0.5)
    elapsed = time.monotonic() - t0 - 0.5
    return backlog / elapsed, backlog / published


async def work_done(database_url: str) -> dict[str, int]:
    """Sends, inbox deliveries and outbox rows so far, to compare the work of the system and the bare
    baseline (the difference across the saturation run)."""
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM notifications.deliveries WHERE channel IN ('email', 'webhook')) "
            "AS sends, (SELECT count(*) FROM notifications.deliveries WHERE channel = 'inbox') AS inbox, "
            "(SELECT count(*) FROM loans.outbox) + (SELECT count(*) FROM catalog.outbox) "
            "+ (SELECT count(*) FROM notifications.outbox) AS outbox"
        )
    finally:
        await conn.close()
    return dict(row) if row is not None else {}


async def fixed_rate(  # noqa: C901 - the open-loop generator and its side flows
    integrator: Integrator,
    api: Api,
    mix: Mix,
    world: World,
    rate: int,
    seconds: float,
    sender: Callable[[EventData], Org],
) -> dict[str, float]:
    """Open loop: events at ``rate``/s (plus order lifecycles and HTTP product work); event id -> time."""
    js = integrator.js
    if js is None:
        raise RuntimeError("not connected")
    sent: dict[str, float] = {}
    lifecycles: list[tuple[float, str, str, str, int]] = []  # (due, order, buyer, seller, step)
    pending: set[asyncio.Task[Any]] = set()
    steps = ("confirm", "ship", "deliver", "pay")
    start = time.monotonic()
    total = int(rate * seconds)
    http_every = max(1, rate // 5)  # a few product submissions and curations per second through the API

    def fire(data: EventData) -> None:
        env = make_event(data, source="urn:integrator:bench")
        subject = sender(data).subject(env.type)
        sent[env.msg_id] = time.time()
        task = asyncio.create_task(
            integrator.publish_raw(subject, env.to_json_bytes(), {"Nats-Msg-Id": env.msg_id})
        )
        pending.add(task)
        task.add_done_callback(pending.discard)

    async def http_product(k: int) -> None:
        seller_nib = world.sellers[k % len(world.sellers)]
        pid = f"PRD-{mix.tag}-R{rate}-{k:05d}"
        body = product(pid, seller_nib).model_dump(mode="json")
        r = await api.command("catalog", "POST", "/products", body, label=pid, who=INTEGRATOR)
        if r.status_code < 300:
            await api.command(
                "catalog",
                "POST",
                f"/products/{pid}/curation",
                {"decision": "approved", "tier": "local"},
                label=pid,
                who=CURATOR,
            )

    for k in range(total):
        due = start + k / rate
        now = time.monotonic()
        if due > now:
            await asyncio.sleep(due - now)
        if lifecycles and lifecycles[0][0] <= time.monotonic():
            _, order_id, buyer, seller_nib, step = lifecycles.pop(0)
            fire(lifecycle(steps[step], order_id, buyer, seller_nib))
            if step + 1 < len(steps):
                lifecycles.append((time.monotonic() + 1.5, order_id, buyer, seller_nib, step + 1))
            continue
        if k % http_every == 0:
            task = asyncio.create_task(http_product(k))
            pending.add(task)
            task.add_done_callback(pending.discard)
            continue
        kind, data = mix.event()
        if kind == "order" and len(lifecycles) < rate:
            placed: Any = data
            seller_nib = next(s for p, s in world.products if p == placed.lines[0].product_id)
            lifecycles.append((time.monotonic() + 1.5, placed.order_id, placed.buyer.id, seller_nib, 0))
        fire(data)
    if pending:
        await asyncio.gather(*list(pending), return_exceptions=True)
    return sent


# ------------------------------------------------------------------------------------------------------
# the bare baseline: nats-py and asyncpg only

BASE_SCHEMA = "bench_bare"
BASE_STREAM = "BARE"


async def _bare_setup(
    nats_url: str,
    database_url: str,
    schema: str,
    stream: str,
    durables: dict[str, list[str]],
    ddl: str,
) -> tuple[Client, JetStreamContext, asyncpg.Pool]:
    """A bare pipeline's connections, a fresh ``schema`` with the tables every bare pipeline has (inbox,
    state, outbox) plus ``ddl``, and a fresh ``stream`` (its durables' filters under one prefix)."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream(publish_async_max_pending=256)
    pool = await asyncpg.create_pool(database_url, min_size=4, max_size=10)
    if pool is None:
        raise RuntimeError("no pool")
    async with pool.acquire() as conn:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
        await conn.execute(
            f"""
            CREATE TABLE {schema}.inbox (consumer text, event_id uuid, PRIMARY KEY (consumer, event_id));
            CREATE TABLE {schema}.state (key text PRIMARY KEY, data jsonb, version int NOT NULL DEFAULT 1);
            CREATE TABLE {schema}.outbox (id bigserial PRIMARY KEY, event_id uuid UNIQUE, subject text,
                payload bytea, published_at timestamptz);
            {ddl}
            """
        )
    prefix = next(iter(durables.values()))[0].split(".")[0]
    with contextlib.suppress(Exception):
        await js.delete_stream(stream)
    await js.add_stream(
        api.StreamConfig(
            name=stream, subjects=[f"{prefix}.>"], storage=api.StorageType.FILE, duplicate_window=120
        )
    )
    for durable, subjects in durables.items():
        await js.add_consumer(
            stream,
            api.ConsumerConfig(
                durable_name=durable,
                ack_policy=api.AckPolicy.EXPLICIT,
                filter_subjects=subjects,
                max_ack_pending=1000,
            ),
        )
    return nc, js, pool


async def baseline(  # noqa: C901, PLR0915 - the whole bare pipeline in one place
    nats_url: str, database_url: str, smtp: SmtpSink, hooks: WebhookSink, backlog: int, mix: Mix
) -> float:
    nc, js, pool = await _bare_setup(
        nats_url,
        database_url,
        BASE_SCHEMA,
        BASE_STREAM,
        {"bare-in": ["bare.in.>"], "bare-out": ["bare.out.>"]},
        f"CREATE TABLE {BASE_SCHEMA}.deliveries (id uuid PRIMARY KEY, event_id uuid, channel text, "
        "status text);",
    )
    notifying = {"restructuring", "order"}
    bodies = []
    for _ in range(backlog):
        kind, data = mix.event()
        env = make_event(data, source="urn:integrator:bench")
        bodies.append((f"bare.in.{kind}", env.msg_id, env.to_json_bytes(), kind in notifying))
    done = asyncio.Event()
    remaining = {"in": len(bodies), "out": sum(1 for b in bodies if b[3])}
    wake = asyncio.Event()
    http = httpx.AsyncClient()

    async def consume_in() -> None:
        sub = await js.pull_subscribe("bare.in.>", durable="bare-in", stream=BASE_STREAM)
        while remaining["in"] > 0:
            try:
                msgs = await sub.fetch(64, timeout=1)
            except nats.errors.TimeoutError:
                continue

            async def one(msg: Any) -> None:
                event = json.loads(msg.data)
                async with pool.acquire() as conn, conn.transaction():
                    fresh = await conn.fetchval(
                        f"INSERT INTO {BASE_SCHEMA}.inbox VALUES ('in', $1) "
                        "ON CONFLICT DO NOTHING RETURNING true",
                        event["id"],
                    )
                    if fresh:
                        key = event.get("subject") or event["id"]
                        await conn.fetchrow(
                            f"SELECT data FROM {BASE_SCHEMA}.state WHERE key = $1 FOR UPDATE", key
                        )
                        await conn.execute(
                            f"INSERT INTO {BASE_SCHEMA}.state (key, data) VALUES ($1, $2::jsonb) "
                            "ON CONFLICT (key) "
                            "DO UPDATE SET data = excluded.data, version = state.version + 1",
                            key,
                            json.dumps(event["data"]),
                        )
                        if msg.subject.split(".")[-1] in notifying:
                            outcome = {
                                "id": str(uuid4()),
                                "correlationid": event["id"],
                                "data": event["data"],
                            }
                            await conn.execute(
                                f"INSERT INTO {BASE_SCHEMA}.outbox (event_id, subject, payload) "
                                "VALUES ($1, $2, $3)",
                                outcome["id"],
                                "bare.out.outcome",
                                json.dumps(outcome).encode(),
                            )
                            await conn.execute("SELECT pg_notify('bare_outbox', '')")
                await msg.ack()
                remaining["in"] -= 1

            await asyncio.gather(*(one(m) for m in msgs))
            wake.set()

    async def relay() -> None:
        while remaining["out"] > 0 or remaining["in"] > 0:
            if not await bare_relay_batch(pool, js, BASE_SCHEMA):
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), 0.1)

    async def notifier() -> None:
        sub = await js.pull_subscribe("bare.out.>", durable="bare-out", stream=BASE_STREAM)
        sem = asyncio.Semaphore(32)
        while remaining["out"] > 0:
            try:
                msgs = await sub.fetch(64, timeout=1)
            except nats.errors.TimeoutError:
                continue

            async def one(msg: Any) -> None:
                async with sem:
                    outcome = json.loads(msg.data)
                    delivery = uuid4()
                    async with pool.acquire() as conn:
                        await conn.execute(
                            f"INSERT INTO {BASE_SCHEMA}.deliveries VALUES ($1, $2, 'email', 'sending')",
                            delivery,
                            outcome["id"],
                        )
                    await aiosmtplib.send(
                        f"X-KUMKM-Delivery: bare-{delivery}\r\nSubject: bare\r\n\r\nhello",
                        sender="bench@example.org",
                        recipients=["party@example.org"],
                        hostname="127.0.0.1",
                        port=smtp.port,
                    )
                    await http.post(
                        hooks.url, content=msg.data, headers={"Idempotency-Key": f"bare-{delivery}"}
                    )
                    async with pool.acquire() as conn:
                        await conn.execute(
                            f"UPDATE {BASE_SCHEMA}.deliveries SET status = 'delivered' WHERE id = $1",
                            delivery,
                        )
                    await msg.ack()
                    remaining["out"] -= 1

            await asyncio.gather(*(one(m) for m in msgs))

    t0 = time.monotonic()
    for subject, msg_id, body, _ in bodies:
        await js.publish_async(subject, body, headers={"Nats-Msg-Id": msg_id})
    await js.publish_async_completed()
    await asyncio.gather(consume_in(), relay(), notifier())
    elapsed = time.monotonic() - t0
    done.set()
    await http.aclose()
    await pool.close()
    await nc.drain()
    return len(bodies) / elapsed


# ------------------------------------------------------------------------------------------------------
# the bare baseline doing the system's reads and writes: nats-py and asyncpg only

EQ_SCHEMA = "bench_bare_eq"
EQ_STREAM = "BAREEQ"
CHANNELS_SENT = ("email", "webhook")


async def baseline_equivalent(  # noqa: C901, PLR0915 - the whole bare pipeline in one place
    nats_url: str,
    database_url: str,
    smtp: SmtpSink,
    hooks: WebhookSink,
    backlog: int,
    mix: Mix,
    world: World,
) -> float:
    """The same backlog with the work the services do per event, without the services' framework.

    Like the system: every integrator event is consumed once with an inbox row and a state write (loans,
    catalog, contacts); a restructuring request and an order each produce an outcome event through the
    outbox (approved, accepted); the notifier consumes the restructuring request itself and every outcome
    (as notifications does), and each of those becomes three delivery rows (email, webhook, inbox), an
    inbox message and its receipt; the email and the webhook are claimed (commit), sent, and recorded with
    a receipt each in the outbox (commit); a relay publishes every outbox row. Loan disbursements are
    also consumed a second time to learn the borrower, as notifications does.
    """
    s = EQ_SCHEMA
    nc, js, pool = await _bare_setup(
        nats_url,
        database_url,
        s,
        EQ_STREAM,
        {
            "eq-in": ["bareq.in.>"],
            "eq-nin": ["bareq.in.restructuring", "bareq.in.disbursed"],
            "eq-out": ["bareq.out.>"],
        },
        f"""
        CREATE TABLE {s}.contacts (party_id text PRIMARY KEY, name text, email text, webhook_url text);
        CREATE TABLE {s}.borrowers (loan_id text PRIMARY KEY, party_id text);
        CREATE TABLE {s}.sellers (product_id text PRIMARY KEY, party_id text);
        CREATE TABLE {s}.deliveries (id uuid PRIMARY KEY, event_id uuid, party_id text, channel text,
            status text, subject text, body text, attempts int NOT NULL DEFAULT 0,
            UNIQUE (event_id, party_id, channel));
        CREATE TABLE {s}.attempts (delivery_id uuid, attempt_no int, outcome text,
            PRIMARY KEY (delivery_id, attempt_no));
        CREATE TABLE {s}.inbox_messages (id uuid PRIMARY KEY, party_id text, subject text, body text);
        """,
    )
    async with pool.acquire() as conn:
        parties = [*world.coops, *world.sellers, *world.buyers]
        await conn.executemany(
            f"INSERT INTO {s}.contacts VALUES ($1, $2, $3, $4)",
            [(p, f"Party {p[-5:]}", f"{p.lower()}@example.org", f"{hooks.url}/{p}") for p in parties],
        )
        await conn.executemany(f"INSERT INTO {s}.borrowers VALUES ($1, $2)", world.loans)
        await conn.executemany(f"INSERT INTO {s}.sellers VALUES ($1, $2)", world.products)
    bodies = []
    for _ in range(backlog):
        kind, data = mix.event()
        env = make_event(data, source="urn:integrator:bench")
        bodies.append((f"bareq.in.{kind}", env.msg_id, env.to_json_bytes(), kind))
    kinds = [b[3] for b in bodies]
    remaining = {
        "eq-in": len(bodies),
        "eq-nin": sum(1 for k in kinds if k in {"restructuring", "disbursed"}),
        "eq-out": sum(1 for k in kinds if k in {"restructuring", "order"}),
    }
    wake = asyncio.Event()
    http = httpx.AsyncClient()
    smtp_pool: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
    for _ in range(16):  # persistent connections, as many as the service keeps open
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp.port)
        await client.connect()
        smtp_pool.put_nowait(client)

    async def add_outbox(conn: Any, subject: str, body: dict[str, Any]) -> None:
        await conn.execute(
            f"INSERT INTO {s}.outbox (event_id, subject, payload) SELECT $1, $2, $3 "
            "FROM pg_notify('bare_eq_outbox', '')",
            body["id"],
            subject,
            json.dumps(body).encode(),
        )

    async def notify_round(durable: str, event: dict[str, Any], party: str) -> None:
        """One notifying event: deliveries written with the inbox, then email and webhook sent."""
        ids = {ch: uuid4() for ch in ("email", "webhook", "inbox")}
        async with pool.acquire() as conn, conn.transaction():
            fresh = await conn.fetchval(
                f"INSERT INTO {s}.inbox VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true",
                durable,
                event["id"],
            )
            if not fresh:
                return
            contact = await conn.fetchrow(f"SELECT * FROM {s}.contacts WHERE party_id = $1", party)
            if contact is None:
                raise RuntimeError(f"no contact for {party}")
            subject = f"{event['type']} for {contact['name']}"
            body = json.dumps(event["data"])
            await conn.execute(
                f"INSERT INTO {s}.deliveries (id, event_id, party_id, channel, status, subject, body) "
                "SELECT u.id, $2, $3, u.ch, u.st, $4, $5 FROM unnest($1::uuid[], $6::text[], $7::text[]) "
                "AS u(id, ch, st) ON CONFLICT DO NOTHING",
                list(ids.values()),
                event["id"],
                party,
                subject,
                body,
                list(ids),
                ["pending", "pending", "delivered"],
            )
            await conn.execute(
                f"WITH m AS (INSERT INTO {s}.inbox_messages VALUES ($1, $2, $3, $4)) "
                f"INSERT INTO {s}.attempts VALUES ($1, 1, 'delivered')",
                ids["inbox"],
                party,
                subject,
                body,
            )
            await add_outbox(conn, "bareq.rcpt.inbox", {"id": str(uuid4()), "delivery": str(ids["inbox"])})
        sent = [ids["email"], ids["webhook"]]
        async with pool.acquire() as conn:  # the claim, committed before the sends
            await conn.execute(
                f"WITH c AS (UPDATE {s}.deliveries SET status = 'sending', attempts = attempts + 1 "
                "WHERE id = ANY($1::uuid[]) RETURNING id, attempts) "
                f"INSERT INTO {s}.attempts SELECT id, attempts, 'sending' FROM c",
                sent,
            )

        async def email() -> None:
            message = (
                f"From: bench@example.org\r\nTo: {contact['email']}\r\nSubject: {subject}\r\n"
                f"X-KUMKM-Delivery: {ids['email']}\r\n\r\n{body}\r\n"
            )
            client = await smtp_pool.get()
            try:
                await client.sendmail("bench@example.org", [contact["email"]], message)
            finally:
                smtp_pool.put_nowait(client)

        async def webhook() -> None:
            await http.post(
                contact["webhook_url"], content=body, headers={"Idempotency-Key": str(ids["webhook"])}
            )

        await asyncio.gather(email(), webhook())
        async with pool.acquire() as conn, conn.transaction():  # the outcomes and their receipts
            await conn.execute(
                f"WITH d AS (UPDATE {s}.deliveries SET status = 'delivered' WHERE id = ANY($1::uuid[]) "
                "RETURNING id, attempts) "
                f"UPDATE {s}.attempts a SET outcome = 'delivered' FROM d "
                "WHERE a.delivery_id = d.id AND a.attempt_no = d.attempts",
                sent,
            )
            for ident in sent:
                await add_outbox(conn, "bareq.rcpt.sent", {"id": str(uuid4()), "delivery": str(ident)})

    async def on_in(msg: Any) -> None:
        event = json.loads(msg.data)
        kind = msg.subject.split(".")[-1]
        async with pool.acquire() as conn, conn.transaction():
            fresh = await conn.fetchval(
                f"INSERT INTO {s}.inbox VALUES ('eq-in', $1) ON CONFLICT DO NOTHING RETURNING true",
                event["id"],
            )
            if fresh:
                key = event.get("subject") or event["id"]
                await conn.fetchrow(f"SELECT data FROM {s}.state WHERE key = $1 FOR UPDATE", key)
                await conn.execute(
                    f"INSERT INTO {s}.state (key, data) VALUES ($1, $2::jsonb) ON CONFLICT (key) "
                    "DO UPDATE SET data = excluded.data, version = state.version + 1",
                    key,
                    json.dumps(event["data"]),
                )
                if kind in {"restructuring", "order"}:
                    outcome = {"id": str(uuid4()), "type": f"{kind}.outcome", "kind": kind}
                    outcome |= {"correlationid": event["id"], "data": event["data"]}
                    await add_outbox(conn, f"bareq.out.{kind}", outcome)
        await msg.ack()

    async def recipient(event: dict[str, Any], kind: str) -> str:
        data = event["data"]
        if kind == "order":
            found = await pool.fetchval(
                f"SELECT party_id FROM {s}.sellers WHERE product_id = $1", data["lines"][0]["product_id"]
            )
        else:
            found = await pool.fetchval(
                f"SELECT party_id FROM {s}.borrowers WHERE loan_id = $1", data["loan_id"]
            )
        return str(found)

    async def on_nin(msg: Any) -> None:
        event = json.loads(msg.data)
        if msg.subject.endswith(".disbursed"):
            async with pool.acquire() as conn, conn.transaction():
                if await conn.fetchval(
                    f"INSERT INTO {s}.inbox VALUES ('eq-nin', $1) ON CONFLICT DO NOTHING RETURNING true",
                    event["id"],
                ):
                    await conn.execute(
                        f"INSERT INTO {s}.borrowers VALUES ($1, $2) ON CONFLICT (loan_id) "
                        "DO UPDATE SET party_id = excluded.party_id",
                        event["data"]["loan_id"],
                        event["data"]["borrower"]["id"],
                    )
        else:
            await notify_round("eq-nin", event, await recipient(event, "restructuring"))
        await msg.ack()

    async def on_out(msg: Any) -> None:
        event = json.loads(msg.data)
        await notify_round("eq-out", event, await recipient(event, event["kind"]))
        await msg.ack()

    async def consume(durable: str, handle: Callable[[Any], Awaitable[None]]) -> None:
        sub = await js.pull_subscribe_bind(durable, stream=EQ_STREAM)
        while remaining[durable] > 0:
            try:
                msgs = await sub.fetch(64, timeout=1)
            except nats.errors.TimeoutError:
                continue

            async def one(msg: Any) -> None:
                await handle(msg)
                remaining[durable] -= 1

            await asyncio.gather(*(one(m) for m in msgs))

    async def relay() -> None:
        listener = await pool.acquire()
        await listener.add_listener("bare_eq_outbox", on_notify)
        try:
            while True:
                wake.clear()
                if not await bare_relay_batch(pool, js, s):
                    if not any(remaining.values()):
                        return
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), 1.0)
        finally:
            await listener.remove_listener("bare_eq_outbox", on_notify)
            await pool.release(listener)

    def on_notify(*_: object) -> None:
        wake.set()

    t0 = time.monotonic()
    for subject, msg_id, body, _ in bodies:
        await js.publish_async(subject, body, headers={"Nats-Msg-Id": msg_id})
    await js.publish_async_completed()
    await asyncio.gather(
        consume("eq-in", on_in), consume("eq-nin", on_nin), consume("eq-out", on_out), relay()
    )
    elapsed = time.monotonic() - t0
    work = await pool.fetchrow(
        f"SELECT (SELECT count(*) FROM {s}.deliveries WHERE channel <> 'inbox') AS sends, "
        f"(SELECT count(*) FROM {s}.deliveries WHERE channel = 'inbox') AS inbox, "
        f"(SELECT count(*) FROM {s}.outbox) AS outbox"
    )
    if work is not None:
        print(f"    (equivalent bare: {work['sends']} sends, {work['inbox']} inbox, {work['outbox']} outbox)")
    await http.aclose()
    while not smtp_pool.empty():
        with contextlib.suppress(Exception):
            await smtp_pool.get_nowait().quit()
    await pool.close()
    await nc.drain()
    return len(bodies) / elapsed


# ------------------------------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace) -> int:  # noqa: PLR0915 - one report, top to bottom
    smtp = SmtpSink()
    smtp.start()
    hooks = WebhookSink()
    await hooks.start()
    cluster = Cluster(ClusterConfig(smtp_port=smtp.port, send_lease=60.0))
    stop = asyncio.Event()
    rows: list[tuple[str, str, str, str, str]] = []
    try:
        await asyncio.to_thread(cluster.start)
        sampler = asyncio.create_task(rss_sampler(cluster, stop))
        ledger = Ledger()
        integrator = Integrator(cluster.nats_url, ledger)
        await integrator.connect()
        api = Api({s: cluster.url(s) for s in SERVICES}, ledger, cluster.signin)
        scenario = Scenario(integrator, api, ledger, hooks.url, tag="B")
        checker = Checker(
            nats_url=cluster.nats_url,
            database_url=cluster.database_url,
            notifications_url=cluster.url("notifications"),
            signin=cluster.signin,
            ledger=ledger,
            smtp=smtp,
            webhooks=hooks,
        )
        world = await prepare_world(scenario, api, integrator, "B", checker)
        mix = Mix(world, hooks.url, "S")
        print(f"system: cluster and world ready (data in {cluster.data_dir})", flush=True)

        # Each baseline draws the same mix as the system: the loans not yet asked to restructure are
        # taken from a copy of the world as it was before the saturation run.
        def same_world() -> World:
            return dataclasses.replace(world, unrequested=list(unrequested))

        unrequested = list(world.unrequested)
        before = await work_done(cluster.database_url)
        sender = senders(scenario, world)
        rate, publish_rate = await saturation(integrator, mix, checker, args.backlog, sender)
        after = await work_done(cluster.database_url)
        print("    (system: " + ", ".join(f"{after[k] - before[k]} {k}" for k in after) + ")", flush=True)
        print(
            f"saturation: {rate:,.0f} events/s (publish {publish_rate:,.0f}/s) over {args.backlog} events",
            flush=True,
        )

        base_rate = await baseline(
            cluster.nats_url,
            cluster.database_url,
            smtp,
            hooks,
            args.backlog,
            Mix(same_world(), hooks.url, "BARE"),
        )
        ratio = rate / base_rate
        print(f"baseline (minimal work):    {base_rate:,.0f} events/s; ratio {ratio:.2f}", flush=True)
        eq_world = same_world()
        eq_rate = await baseline_equivalent(
            cluster.nats_url,
            cluster.database_url,
            smtp,
            hooks,
            args.backlog,
            Mix(eq_world, hooks.url, "BAREQ"),
            eq_world,
        )
        eq_ratio = rate / eq_rate
        print(f"baseline (equivalent work): {eq_rate:,.0f} events/s; ratio {eq_ratio:.2f}", flush=True)
        rows.append(
            (
                "throughput at saturation, bare doing the same work",
                f"{rate:,.0f} events/s",
                f"{eq_rate:,.0f} events/s",
                f"{eq_ratio:.2f}",
                "met" if eq_ratio >= GOAL_RATIO else "MISSED (goal >= 0.60)",
            )
        )
        rows.append(
            (
                "throughput at saturation, minimal bare (see doc)",
                f"{rate:,.0f} events/s",
                f"{base_rate:,.0f} events/s",
                f"{ratio:.2f}",
                "",
            )
        )
        for r in args.rates:
            mix_r = Mix(world, hooks.url, f"R{r}")
            sent = await fixed_rate(integrator, api, mix_r, world, r, args.rate_seconds, sender)
            await checker.wait_quiet(args.drain, settle=0.5)
            lat = await latencies(cluster.database_url, sent, smtp, hooks)
            p50, p95, p99 = pct(lat, 50), pct(lat, 95), pct(lat, 99)
            goal = ""
            if r == 500:
                goal = "met" if p99 < GOAL_P99_MS else f"MISSED (goal p99 < {GOAL_P99_MS:.0f} ms)"
            print(
                f"rate {r}/s for {args.rate_seconds:.0f}s: {len(sent)} events, "
                f"{len(lat)} with notifications; "
                f"p50 {p50:.0f} ms p95 {p95:.0f} ms p99 {p99:.0f} ms {goal}",
                flush=True,
            )
            rows.append(
                (
                    f"end-to-end latency at {r} events/s (p50/p95/p99)",
                    f"{p50:.0f}/{p95:.0f}/{p99:.0f} ms",
                    "",
                    "",
                    goal,
                )
            )
        stop.set()
        await sampler
        for name, peak in cluster.peak_rss().items():
            mb = peak / 1e6
            rows.append(
                (
                    f"peak RSS {name}",
                    f"{mb:.0f} MB",
                    "",
                    "",
                    "met" if mb < GOAL_RSS_MB else "MISSED (goal < 200 MB)",
                )
            )
        await api.close()
        await integrator.close()
    finally:
        stop.set()
        await asyncio.to_thread(cluster.stop)
        await hooks.stop()
        smtp.stop()
        import shutil

        shutil.rmtree(cluster.data_dir, ignore_errors=True)
    cpu = psutil.cpu_count() or 0
    print(
        f"\nwhole system, {datetime.now(UTC).date()}, {platform.node()} {platform.machine()} {cpu} cores, "
        f"Python {platform.python_version()}"
    )
    print(f"| {'figure':<48} | {'value':<16} | {'baseline':<16} | {'ratio':<5} | goal |")
    print(f"|{'-' * 50}|{'-' * 18}|{'-' * 18}|{'-' * 7}|------|")
    for what, value, base, ratio_s, goal in rows:
        print(f"| {what:<48} | {value:<16} | {base:<16} | {ratio_s:<5} | {goal} |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.system", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=int(os.environ.get("KUMKM_BENCH_BACKLOG", "3000")))
    parser.add_argument(
        "--rates", type=lambda s: [int(x) for x in s.split(",")], default=[100, 500, 1000], help="events/s"
    )
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    parser.add_argument("--drain", type=float, default=120.0, help="longest wait for a run to settle")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
