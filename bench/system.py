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

``--ab [REF]`` runs the previous release (``REF``, extracted with ``git archive``) and then this tree in one
run; ``--slow-fsync MS`` runs both on an emulated slower disk (``bench/slow_disk.py``); the disk's fsync rate
(``pg_test_fsync``) heads the output, so runs on different machines can be compared.

The outbox relay's rate from a backlog is measured by ``bench/outbox_relay.py`` (``make bench`` runs both).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias
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

from bench import slow_disk
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
from kumkm_shared.servers.postgres import postgres_bin_dir

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from nats.aio.client import Client
    from nats.js import JetStreamContext

PREVIOUS_RELEASE = "5e6de40"  # the last release before batch durables: --ab's default
GOAL_SATURATION_X = 4.0  # the group-commit targets: saturation x the previous release
GOAL_RATIO = 0.8  # saturation / the batched bare baseline
GOAL_P99_HALF_MS = 100.0  # at half of saturation
GOAL_P99_AT_RATE = 100  # events/s
GOAL_P99_AT_RATE_MS = 250.0
GOAL_RSS_MB = 150.0


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
# the bare baselines doing the system's reads and writes: nats-py and asyncpg only


def _same_work_ddl(s: str) -> str:
    return f"""
        CREATE TABLE {s}.contacts (party_id text PRIMARY KEY, name text, email text, webhook_url text);
        CREATE TABLE {s}.borrowers (loan_id text PRIMARY KEY, party_id text);
        CREATE TABLE {s}.sellers (product_id text PRIMARY KEY, party_id text);
        CREATE TABLE {s}.deliveries (id uuid PRIMARY KEY, event_id uuid, party_id text, channel text,
            status text, subject text, body text, attempts int NOT NULL DEFAULT 0,
            UNIQUE (event_id, party_id, channel));
        CREATE TABLE {s}.attempts (delivery_id uuid, attempt_no int, outcome text,
            PRIMARY KEY (delivery_id, attempt_no));
        CREATE TABLE {s}.inbox_messages (id uuid PRIMARY KEY, party_id text, subject text, body text);
        """


@dataclass(frozen=True)
class BareSpec:
    """The names one same-work bare pipeline runs under: its schema, stream, subject prefix (the events
    on ``<prefix>.in.<kind>``, the outcomes on ``<prefix>.out.<kind>``), durables (``<durable>-in``, every
    event; ``<durable>-nin``, the notifier's restructuring requests and disbursements; ``<durable>-out``,
    the outcomes), the relay's NOTIFY channel, and what its final count is called."""

    schema: str
    stream: str
    prefix: str
    durable: str
    label: str
    http_connections: int | None = None  # None: httpx's default limits

    @property
    def channel(self) -> str:
        return f"{self.schema}_outbox"


def letter(event: dict[str, Any], party: str, contact: Any) -> tuple[str, str]:
    """A notifying event's subject and body for ``party`` (its contact row, which must exist)."""
    if contact is None:
        raise RuntimeError(f"no contact for {party}")
    return f"{event['type']} for {contact['name']}", json.dumps(event["data"])


@dataclass
class BareRig:
    """What a same-work bare pipeline's consumers use: the connections, the messages left per durable,
    the SMTP connections and the HTTP client its sends go through."""

    spec: BareSpec
    js: JetStreamContext
    pool: asyncpg.Pool
    remaining: dict[str, int]
    http: httpx.AsyncClient
    smtp_pool: asyncio.Queue[aiosmtplib.SMTP]

    async def email(self, ident: Any, contact: Any, subject: str, body: str) -> None:
        message = (
            f"From: bench@example.org\r\nTo: {contact['email']}\r\nSubject: {subject}\r\n"
            f"X-KUMKM-Delivery: {ident}\r\n\r\n{body}\r\n"
        )
        client = await self.smtp_pool.get()
        try:
            await client.sendmail("bench@example.org", [contact["email"]], message)
        finally:
            self.smtp_pool.put_nowait(client)

    async def claim(self, conn: Any, ids: list[Any]) -> None:
        """Sends claimed (each delivery 'sending', an attempt row each), committed before they are made."""
        s = self.spec.schema
        await conn.execute(
            f"WITH c AS (UPDATE {s}.deliveries SET status = 'sending', attempts = attempts + 1 "
            "WHERE id = ANY($1::uuid[]) RETURNING id, attempts) "
            f"INSERT INTO {s}.attempts SELECT id, attempts, 'sending' FROM c",
            ids,
        )

    async def delivered(self, conn: Any, ids: list[Any]) -> None:
        """Sends made: each delivery and its last attempt 'delivered'."""
        s = self.spec.schema
        await conn.execute(
            f"WITH d AS (UPDATE {s}.deliveries SET status = 'delivered' WHERE id = ANY($1::uuid[]) "
            "RETURNING id, attempts) "
            f"UPDATE {s}.attempts a SET outcome = 'delivered' FROM d "
            "WHERE a.delivery_id = d.id AND a.attempt_no = d.attempts",
            ids,
        )

    async def webhook(self, ident: Any, contact: Any, body: str) -> None:
        await self.http.post(contact["webhook_url"], content=body, headers={"Idempotency-Key": str(ident)})


Consumers: TypeAlias = "Callable[[BareRig], list[Callable[[], Awaitable[None]]]]"  # a baseline's consumers


async def _bare_rig(
    nats_url: str, database_url: str, smtp: SmtpSink, hooks: WebhookSink, world: World, spec: BareSpec
) -> tuple[Client, BareRig]:
    """A fresh schema and stream for ``spec``, the world's parties, loans and products inserted, 16
    persistent SMTP connections (as many as the service keeps open) and an HTTP client."""
    s = spec.schema
    nc, js, pool = await _bare_setup(
        nats_url,
        database_url,
        s,
        spec.stream,
        {
            f"{spec.durable}-in": [f"{spec.prefix}.in.>"],
            f"{spec.durable}-nin": [f"{spec.prefix}.in.restructuring", f"{spec.prefix}.in.disbursed"],
            f"{spec.durable}-out": [f"{spec.prefix}.out.>"],
        },
        _same_work_ddl(s),
    )
    async with pool.acquire() as conn:
        parties = [*world.coops, *world.sellers, *world.buyers]
        await conn.executemany(
            f"INSERT INTO {s}.contacts VALUES ($1, $2, $3, $4)",
            [(p, f"Party {p[-5:]}", f"{p.lower()}@example.org", f"{hooks.url}/{p}") for p in parties],
        )
        await conn.executemany(f"INSERT INTO {s}.borrowers VALUES ($1, $2)", world.loans)
        await conn.executemany(f"INSERT INTO {s}.sellers VALUES ($1, $2)", world.products)
    http = (
        httpx.AsyncClient()
        if spec.http_connections is None
        else httpx.AsyncClient(limits=httpx.Limits(max_connections=spec.http_connections))
    )
    smtp_pool: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
    for _ in range(16):
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp.port)
        await client.connect()
        smtp_pool.put_nowait(client)
    return nc, BareRig(spec, js, pool, {}, http, smtp_pool)


async def _bare_relay(rig: BareRig) -> None:
    """Publishes every outbox row, woken by NOTIFY on the spec's channel, until no durable has any left."""
    wake = asyncio.Event()

    def on_notify(*_: object) -> None:
        wake.set()

    listener = await rig.pool.acquire()
    await listener.add_listener(rig.spec.channel, on_notify)
    try:
        while True:
            wake.clear()
            if not await bare_relay_batch(rig.pool, rig.js, rig.spec.schema):
                if not any(r > 0 for r in rig.remaining.values()):
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), 1.0)
    finally:
        await listener.remove_listener(rig.spec.channel, on_notify)
        await rig.pool.release(listener)


async def bare_same_work(
    nats_url: str,
    database_url: str,
    smtp: SmtpSink,
    hooks: WebhookSink,
    backlog: int,
    mix: Mix,
    world: World,
    *,
    spec: BareSpec,
    consumers: Consumers,
) -> float:
    """What the same-work bare baselines share: the rig (``_bare_rig``), ``backlog`` events drawn from
    ``mix`` and published, ``consumers(rig)`` run with the relay until every durable has consumed its
    share, the work counted and printed; returns events/s from the first publish to the last outbox row
    published."""
    nc, rig = await _bare_rig(nats_url, database_url, smtp, hooks, world, spec)
    s, pool = spec.schema, rig.pool
    try:
        bodies = []
        for _ in range(backlog):
            kind, data = mix.event()
            env = make_event(data, source="urn:integrator:bench")
            bodies.append((f"{spec.prefix}.in.{kind}", env.msg_id, env.to_json_bytes(), kind))
        kinds = [b[3] for b in bodies]
        rig.remaining |= {
            f"{spec.durable}-in": len(bodies),
            f"{spec.durable}-nin": sum(1 for k in kinds if k in {"restructuring", "disbursed"}),
            f"{spec.durable}-out": sum(1 for k in kinds if k in {"restructuring", "order"}),
        }
        runs = consumers(rig)
        t0 = time.monotonic()
        for subject, msg_id, body, _ in bodies:
            await rig.js.publish_async(subject, body, headers={"Nats-Msg-Id": msg_id})
        await rig.js.publish_async_completed()
        await asyncio.gather(*(run() for run in runs), _bare_relay(rig))
        elapsed = time.monotonic() - t0
        work = await pool.fetchrow(
            f"SELECT (SELECT count(*) FROM {s}.deliveries WHERE channel <> 'inbox') AS sends, "
            f"(SELECT count(*) FROM {s}.deliveries WHERE channel = 'inbox') AS inbox, "
            f"(SELECT count(*) FROM {s}.outbox) AS outbox"
        )
        if work is not None:
            print(
                f"    ({spec.label}: {work['sends']} sends, {work['inbox']} inbox, {work['outbox']} outbox)"
            )
    finally:
        await rig.http.aclose()
        while not rig.smtp_pool.empty():
            with contextlib.suppress(Exception):
                await rig.smtp_pool.get_nowait().quit()
        await pool.close()
        # close, not drain: the work is counted, and nats-py's fetch leaves pull-status messages behind that
        # a drain waits for in vain (DrainTimeoutError after 30 s)
        await nc.close()
    return len(bodies) / elapsed


EQ_SPEC = BareSpec("bench_bare_eq", "BAREEQ", "bareq", "eq", "equivalent bare")


def baseline_equivalent(  # noqa: C901, PLR0915 - one pipeline
    rig: BareRig,
) -> list[Callable[[], Awaitable[None]]]:
    """The same backlog with the work the services do per event, without the services' framework: the
    consumers ``bare_same_work`` runs, a transaction per message.

    Like the system: every integrator event is consumed once with an inbox row and a state write (loans,
    catalog, contacts); a restructuring request and an order each produce an outcome event through the
    outbox (approved, accepted); the notifier consumes the restructuring request itself and every outcome
    (as notifications does), and each of those becomes three delivery rows (email, webhook, inbox), an
    inbox message and its receipt; the email and the webhook are claimed (commit), sent, and recorded with
    a receipt each in the outbox (commit); a relay publishes every outbox row. Loan disbursements are
    also consumed a second time to learn the borrower, as notifications does.
    """
    s, pool, prefix = rig.spec.schema, rig.pool, rig.spec.prefix

    async def add_outbox(conn: Any, subject: str, body: dict[str, Any]) -> None:
        await conn.execute(
            f"INSERT INTO {s}.outbox (event_id, subject, payload) SELECT $1, $2, $3 "
            f"FROM pg_notify('{rig.spec.channel}', '')",
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
            subject, body = letter(event, party, contact)
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
            await add_outbox(
                conn, f"{prefix}.rcpt.inbox", {"id": str(uuid4()), "delivery": str(ids["inbox"])}
            )
        sent = [ids["email"], ids["webhook"]]
        async with pool.acquire() as conn:  # the claim, committed before the sends
            await rig.claim(conn, sent)
        await asyncio.gather(
            rig.email(ids["email"], contact, subject, body), rig.webhook(ids["webhook"], contact, body)
        )
        async with pool.acquire() as conn, conn.transaction():  # the outcomes and their receipts
            await rig.delivered(conn, sent)
            for ident in sent:
                await add_outbox(conn, f"{prefix}.rcpt.sent", {"id": str(uuid4()), "delivery": str(ident)})

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
                    await add_outbox(conn, f"{prefix}.out.{kind}", outcome)
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

    def consume(durable: str, handle: Callable[[Any], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            sub = await rig.js.pull_subscribe_bind(durable, stream=rig.spec.stream)
            while rig.remaining[durable] > 0:
                try:
                    msgs = await sub.fetch(64, timeout=1)
                except nats.errors.TimeoutError:
                    continue

                async def one(msg: Any) -> None:
                    await handle(msg)
                    rig.remaining[durable] -= 1

                await asyncio.gather(*(one(m) for m in msgs))

        return run

    return [consume("eq-in", on_in), consume("eq-nin", on_nin), consume("eq-out", on_out)]


# ------------------------------------------------------------------------------------------------------
# the bare baseline doing the same work with the best technique: a transaction per pulled batch

BAT_SPEC = BareSpec("bench_bare_bat", "BAREBAT", "barebat", "bat", "batched bare", http_connections=64)
BAT_BATCH = 256
Send = tuple[
    Any, Any, Any, str, str
]  # a claimed pair of sends: (email id, webhook id, contact, subject, body)


def baseline_batched(  # noqa: C901, PLR0915 - one pipeline
    rig: BareRig, batch: int = BAT_BATCH
) -> list[Callable[[], Awaitable[None]]]:
    """``baseline_equivalent``'s work, each consumer handling a pull of up to ``batch`` messages at a time.

    Per pulled batch: one transaction whose statements each cover the whole batch (the inbox rows inserted
    with ``unnest`` and the fresh ones returned, the state rows locked with one ``SELECT ... FOR UPDATE`` and
    written with a pipelined ``executemany``, the outbox rows with ``unnest`` and one NOTIFY), then the acks,
    after the commit. The notifier's batch: one transaction writes every delivery row (three per event), the
    inbox messages, their attempts and receipts, and claims every email and webhook of the batch; then all
    of the batch's sends at once (16 persistent SMTP connections, one HTTP client); then one transaction
    records every outcome and its receipt; then the acks. The relay publishes windows of up to 500 rows and
    marks each window with one UPDATE.
    """
    s, pool, prefix = rig.spec.schema, rig.pool, rig.spec.prefix

    async def add_outbox(conn: Any, rows: list[tuple[str, dict[str, Any]]]) -> None:
        if not rows:
            return
        await conn.execute(
            f"INSERT INTO {s}.outbox (event_id, subject, payload) "
            "SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[])",
            [r[1]["id"] for r in rows],
            [r[0] for r in rows],
            [json.dumps(r[1]).encode() for r in rows],
        )
        await conn.execute(f"SELECT pg_notify('{rig.spec.channel}', '')")

    async def fresh_ids(conn: Any, durable: str, events: list[dict[str, Any]]) -> set[str]:
        got = await conn.fetch(
            f"INSERT INTO {s}.inbox SELECT $1, e FROM unnest($2::uuid[]) AS e "
            "ON CONFLICT DO NOTHING RETURNING event_id::text",
            durable,
            [e["id"] for e in events],
        )
        return {r["event_id"] for r in got}

    async def notify_batch(conn: Any, durable: str, items: list[tuple[dict[str, Any], str]]) -> list[Send]:
        """Deliveries for a batch of notifying events (in the caller's transaction) and the claim of every
        email and webhook; returns the sends, which the caller makes after the commit (``send_batch``)."""
        fresh = await fresh_ids(conn, durable, [e for e, _ in items])
        items = [(e, p) for e, p in items if e["id"] in fresh]
        pending_sends: list[Send] = []
        if not items:
            return pending_sends
        found = await conn.fetch(
            f"SELECT * FROM {s}.contacts WHERE party_id = ANY($1::text[])", list({p for _, p in items})
        )
        contacts = {r["party_id"]: r for r in found}
        d_ids, d_events, d_parties, d_channels, d_status, d_subjects, d_bodies = ([] for _ in range(7))
        inbox_rows: list[tuple[Any, str, str, str]] = []
        receipts: list[tuple[str, dict[str, Any]]] = []
        for event, party in items:
            contact = contacts.get(party)
            subject, body = letter(event, party, contact)
            ids = {ch: uuid4() for ch in ("email", "webhook", "inbox")}
            for ch, ident in ids.items():
                d_ids.append(ident)
                d_events.append(event["id"])
                d_parties.append(party)
                d_channels.append(ch)
                d_status.append("delivered" if ch == "inbox" else "pending")
                d_subjects.append(subject)
                d_bodies.append(body)
            inbox_rows.append((ids["inbox"], party, subject, body))
            receipts.append((f"{prefix}.rcpt.inbox", {"id": str(uuid4()), "delivery": str(ids["inbox"])}))
            pending_sends.append((ids["email"], ids["webhook"], contact, subject, body))
        await conn.execute(
            f"INSERT INTO {s}.deliveries (id, event_id, party_id, channel, status, subject, body) "
            "SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], "
            "$7::text[]) ON CONFLICT DO NOTHING",
            d_ids,
            d_events,
            d_parties,
            d_channels,
            d_status,
            d_subjects,
            d_bodies,
        )
        await conn.execute(
            f"WITH m AS (INSERT INTO {s}.inbox_messages SELECT * FROM unnest($1::uuid[], $2::text[], "
            f"$3::text[], $4::text[])) "
            f"INSERT INTO {s}.attempts SELECT i, 1, 'delivered' FROM unnest($1) AS i",
            [r[0] for r in inbox_rows],
            [r[1] for r in inbox_rows],
            [r[2] for r in inbox_rows],
            [r[3] for r in inbox_rows],
        )
        await add_outbox(conn, receipts)
        # the claim of the batch's sends, committed with the batch, before any send
        await rig.claim(conn, [x for p in pending_sends for x in p[:2]])
        return pending_sends

    async def send_batch(sends: list[Send]) -> None:
        await asyncio.gather(
            *(rig.email(e, c, subj, b) for e, _, c, subj, b in sends),
            *(rig.webhook(w, c, b) for _, w, c, _, b in sends),
        )
        sent = [x for p in sends for x in p[:2]]
        async with pool.acquire() as conn, conn.transaction():  # the outcomes and their receipts
            await rig.delivered(conn, sent)
            await add_outbox(
                conn, [(f"{prefix}.rcpt.sent", {"id": str(uuid4()), "delivery": str(i)}) for i in sent]
            )

    async def recipients(conn: Any, items: list[tuple[dict[str, Any], str]]) -> list[str]:
        loans = [e["data"]["loan_id"] for e, k in items if k != "order"]
        products = [e["data"]["lines"][0]["product_id"] for e, k in items if k == "order"]
        borrowers = dict(
            await conn.fetch(f"SELECT loan_id, party_id FROM {s}.borrowers WHERE loan_id = ANY($1)", loans)
        )
        sellers = dict(
            await conn.fetch(
                f"SELECT product_id, party_id FROM {s}.sellers WHERE product_id = ANY($1)", products
            )
        )
        return [
            str(
                sellers[e["data"]["lines"][0]["product_id"]]
                if k == "order"
                else borrowers[e["data"]["loan_id"]]
            )
            for e, k in items
        ]

    async def on_in(msgs: list[Any]) -> list[Send]:
        events = [(json.loads(m.data), m.subject.split(".")[-1]) for m in msgs]
        async with pool.acquire() as conn, conn.transaction():
            fresh = await fresh_ids(conn, "bat-in", [e for e, _ in events])
            todo = [(e, k) for e, k in events if e["id"] in fresh]
            keys = [e.get("subject") or e["id"] for e, _ in todo]
            if todo:
                await conn.fetch(
                    f"SELECT data FROM {s}.state WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE", keys
                )
                await conn.executemany(
                    f"INSERT INTO {s}.state (key, data) VALUES ($1, $2::jsonb) ON CONFLICT (key) "
                    "DO UPDATE SET data = excluded.data, version = state.version + 1",
                    [(key, json.dumps(e["data"])) for key, (e, _) in zip(keys, todo, strict=True)],
                )
            outcomes = []
            for e, k in todo:
                if k in {"restructuring", "order"}:
                    outcome = {"id": str(uuid4()), "type": f"{k}.outcome", "kind": k}
                    outcome |= {"correlationid": e["id"], "data": e["data"]}
                    outcomes.append((f"{prefix}.out.{k}", outcome))
            await add_outbox(conn, outcomes)
        return []

    async def on_nin(msgs: list[Any]) -> list[Send]:
        events = [json.loads(m.data) for m in msgs]
        disbursed = [e for m, e in zip(msgs, events, strict=True) if m.subject.endswith(".disbursed")]
        requests = [e for m, e in zip(msgs, events, strict=True) if not m.subject.endswith(".disbursed")]
        async with pool.acquire() as conn, conn.transaction():
            fresh = await fresh_ids(conn, "bat-nin", disbursed)
            rows = [
                (e["data"]["loan_id"], e["data"]["borrower"]["id"]) for e in disbursed if e["id"] in fresh
            ]
            if rows:
                await conn.executemany(
                    f"INSERT INTO {s}.borrowers VALUES ($1, $2) ON CONFLICT (loan_id) "
                    "DO UPDATE SET party_id = excluded.party_id",
                    rows,
                )
            if not requests:
                return []
            items = [(e, "restructuring") for e in requests]
            parties = await recipients(conn, items)
            return await notify_batch(conn, "bat-nin", list(zip(requests, parties, strict=True)))

    async def on_out(msgs: list[Any]) -> list[Send]:
        events = [json.loads(m.data) for m in msgs]
        async with pool.acquire() as conn, conn.transaction():
            parties = await recipients(conn, [(e, e["kind"]) for e in events])
            return await notify_batch(conn, "bat-out", list(zip(events, parties, strict=True)))

    def consume(
        durable: str, handle: Callable[[list[Any]], Awaitable[list[Send]]]
    ) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            sub = await rig.js.pull_subscribe_bind(durable, stream=rig.spec.stream)
            while rig.remaining[durable] > 0:
                try:
                    msgs = await sub.fetch(batch, timeout=1)
                except nats.errors.TimeoutError:
                    continue
                sends = await handle(msgs)  # one committed transaction for the batch
                if sends:
                    await send_batch(sends)
                await asyncio.gather(*(m.ack() for m in msgs))  # after the commit
                rig.remaining[durable] -= len(msgs)

        return run

    return [consume("bat-in", on_in), consume("bat-nin", on_nin), consume("bat-out", on_out)]


# ------------------------------------------------------------------------------------------------------
# the machine, the previous release, the profiles


def fsync_rate(directory: Path) -> tuple[float, str]:
    """fdatasync of one 8 kB write per second on ``directory``'s disk: the bundled ``pg_test_fsync`` (its
    first test only), else a probe of our own (8 kB written and fdatasync'ed for 1.5 s)."""
    target = directory / "fsync-probe"
    tool = postgres_bin_dir() / "pg_test_fsync"
    if tool.exists():
        with subprocess.Popen(
            [str(tool), "-s", "1", "-f", str(target)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as proc:
            try:
                for line in proc.stdout or ():
                    words = line.split()
                    if len(words) >= 3 and words[0] == "fdatasync" and words[2] == "ops/sec":
                        return float(words[1]), "pg_test_fsync"
            finally:
                proc.kill()
                target.unlink(missing_ok=True)
    n, block = 0, os.urandom(8192)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.5:
            os.pwrite(fd, block, 0)
            os.fdatasync(fd)
            n += 1
        return n / (time.monotonic() - t0), "probe (8 kB write + fdatasync)"
    finally:
        os.close(fd)
        target.unlink(missing_ok=True)


def extract_release(ref: str, into: Path) -> tuple[str, tuple[str, ...]]:
    """``git archive`` of ``ref``'s shared/ and services/ into ``into``; returns the commit and the
    directories to put first on the services' PYTHONPATH."""
    root = Path(__file__).resolve().parent.parent
    commit = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--verify", f"{ref}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", commit, "shared", "services"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    services = sorted(p for p in (into / "services").iterdir() if p.is_dir())
    return commit, (str(into / "shared"), *(str(p) for p in services))


def code_check(cluster: Cluster) -> dict[str, str]:
    """Where each service's interpreter, in the service's own environment, finds kumkm_shared and its
    package; and whether it has ``kumkm_shared.failpoints`` (added after the previous release)."""
    found: dict[str, str] = {}
    for name, svc in cluster.services.items():
        script = (
            "import importlib.util as u, kumkm_shared, kumkm_" + name + " as s\n"
            "print(kumkm_shared.__file__, s.__file__, u.find_spec('kumkm_shared.failpoints') is not None)"
        )
        out = subprocess.run(
            [sys.executable, "-c", script], env=svc.env, capture_output=True, text=True, check=True
        ).stdout.split()
        found[name] = f"{out[0]} {out[1]} failpoints={out[2]}"
    return found


def spy_check(pid: int) -> None:
    """py-spy must be able to read the service's memory (ptrace); fail naming why when it cannot."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile: py-spy is not installed (it is in requirements-dev.txt: make install)")
    got = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True, check=False)
    if got.returncode != 0:
        raise SystemExit(
            f"--profile: py-spy cannot attach to pid {pid} (ptrace: run as root, or set "
            f"/proc/sys/kernel/yama/ptrace_scope to 0, or give CAP_SYS_PTRACE): {got.stderr.strip()[-400:]}"
        )


def spy_start(
    cluster: Cluster, directory: Path, side: str
) -> list[tuple[str, subprocess.Popen[bytes], Path]]:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    directory.mkdir(parents=True, exist_ok=True)
    spies = []
    for name, svc in cluster.services.items():
        pid = svc.pid
        if pid is None:
            raise RuntimeError(f"{name} is not running")
        spy_check(pid)
        out = directory / f"{side}-{name}.txt"
        record = ["record", "--pid", str(pid), "--rate", "100", "--format", "raw", "--nonblocking"]
        proc = subprocess.Popen(
            [spy, *record, "--output", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        spies.append((name, proc, out))
    return spies


def spy_stop(spies: list[tuple[str, subprocess.Popen[bytes], Path]]) -> None:
    for _, proc, _ in spies:
        proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
    for name, proc, _ in spies:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            print(f"    (py-spy for {name} did not stop; killed)")


def _function(frame: str) -> str:
    """``name (path/file.py:123)`` -> ``name (path/file.py)``: a function, whatever line it is on."""
    head, _, rest = frame.rpartition(":")
    return f"{head})" if head and rest.rstrip(")").isdigit() else frame


# The event loop's own frames: a sample's stack above the innermost of these is the same in every sample
# (the entry point, typer, asyncio.run), so the summary counts only what runs below it.
LOOP_FRAMES = frozenset(
    {
        "Runner.run (asyncio/runners.py)",
        "BaseEventLoop.run_forever (asyncio/base_events.py)",
        "BaseEventLoop._run_once (asyncio/base_events.py)",
        "Handle._run (asyncio/events.py)",
    }
)


def _below_loop(frames: list[str]) -> list[str]:
    """The frames below the event loop's innermost frame; the loop frame alone where nothing is below."""
    for i in range(len(frames) - 1, -1, -1):
        if frames[i] in LOOP_FRAMES:
            return frames[i + 1 :] or frames[i:]
    return frames


Ranked = list[tuple[str, int]]  # (function, samples), most first


def profile_summary(path: Path, top: int = 15) -> tuple[int, Ranked, Ranked, Ranked]:
    """From py-spy's raw output (``frame;frame;... count``, outermost first): the samples, the top functions
    by self samples (the innermost frame), by inclusive samples (anywhere on the stack below the event
    loop: ``_below_loop``), and the project's own (``kumkm_*``) by inclusive samples."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = _below_loop([_function(f) for f in stack.split(";") if not f.startswith("process ")])
        if not frames:
            continue
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for f in set(frames):
            inclusive[f] = inclusive.get(f, 0) + count
    ranked = sorted(inclusive.items(), key=lambda kv: -kv[1])
    project = [kv for kv in ranked if "(kumkm_" in kv[0]]
    return total, sorted(own.items(), key=lambda kv: -kv[1])[:top], ranked[:top], project[:top]


def print_profiles(directory: Path, sides: list[str], services: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for side in sides:
        for name in services:
            path = directory / f"{side}-{name}.txt"
            if not path.exists():
                print(f"\nprofile {side} {name}: no output ({path})")
                continue
            total, own, inc, project = profile_summary(path)
            out[f"{side}-{name}"] = {"samples": total, "self": own, "inclusive": inc, "project": project}
            print(f"\nprofile {side} {name}: {total} samples ({path})")
            for title, ranked in (
                ("self samples", own),
                ("inclusive samples", inc),
                ("inclusive samples, the project's code", project),
            ):
                print(f"  top by {title}:")
                for f, n in ranked:
                    print(f"    {100 * n / max(total, 1):5.1f}%  {f}")
    return out


# ------------------------------------------------------------------------------------------------------
# one side of a run: a fresh cluster running one tree's services


@dataclass
class Side:
    label: str  # "previous" or "this"
    code: str  # the commit, or "working tree"
    pythonpath: tuple[str, ...] = ()
    saturation: float = 0.0
    publish_rate: float = 0.0
    work: dict[str, int] = field(default_factory=dict)
    baselines: dict[str, float] = field(default_factory=dict)  # name -> events/s
    rates: list[dict[str, Any]] = field(default_factory=list)
    rss_mb: dict[str, float] = field(default_factory=dict)
    loaded: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def ratio(self, baseline: str) -> float:
        b = self.baselines.get(baseline)
        return self.saturation / b if b else float("nan")

    def p99_at(self, which: str) -> float:
        for r in self.rates:
            if r["label"] == which:
                return float(r["p99"])
        return float("nan")


async def run_side(side: Side, args: argparse.Namespace) -> None:  # noqa: PLR0915 - top to bottom
    t_side = time.monotonic()
    smtp = SmtpSink()
    smtp.start()
    hooks = WebhookSink()
    await hooks.start()
    cluster = Cluster(ClusterConfig(smtp_port=smtp.port, send_lease=60.0, pythonpath=side.pythonpath))
    stop = asyncio.Event()
    try:
        await asyncio.to_thread(cluster.start)
        side.loaded = code_check(cluster)
        for name, where in side.loaded.items():
            print(f"  [{side.label}] {name} runs {where}", flush=True)
        if side.pythonpath and any(not w.startswith(side.pythonpath[0]) for w in side.loaded.values()):
            raise RuntimeError(f"{side.label}: a service does not run the extracted tree: {side.loaded}")
        sampler = asyncio.create_task(rss_sampler(cluster, stop))
        ledger = Ledger()
        integrator = Integrator(cluster.nats_url, ledger)
        await integrator.connect()
        api = Api({s: cluster.urls(s) for s in SERVICES}, ledger, cluster.signin)
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
        print(f"  [{side.label}] cluster and world ready (data in {cluster.data_dir})", flush=True)

        # Each baseline draws the same mix as the system: the loans not yet asked to restructure are
        # taken from a copy of the world as it was before the saturation run.
        def same_world() -> World:
            return dataclasses.replace(world, unrequested=list(unrequested))

        unrequested = list(world.unrequested)
        before = await work_done(cluster.database_url)
        sender = senders(scenario, world)
        spies = spy_start(cluster, args.profile, side.label) if args.profile else []
        try:
            side.saturation, side.publish_rate = await saturation(
                integrator, mix, checker, args.backlog, sender
            )
        finally:
            spy_stop(spies)
        after = await work_done(cluster.database_url)
        side.work = {k: after[k] - before[k] for k in after}
        print(f"  [{side.label}] (system: " + ", ".join(f"{v} {k}" for k, v in side.work.items()) + ")")
        print(
            f"  [{side.label}] saturation: {side.saturation:,.0f} events/s "
            f"(publish {side.publish_rate:,.0f}/s) over {args.backlog} events",
            flush=True,
        )
        if args.baselines:
            args_b = (cluster.nats_url, cluster.database_url, smtp, hooks, args.backlog)
            side.baselines["minimal"] = await baseline(*args_b, Mix(same_world(), hooks.url, "BARE"))
            same_work: tuple[tuple[str, BareSpec, Consumers], ...] = (
                ("equivalent", EQ_SPEC, baseline_equivalent),
                ("batched", BAT_SPEC, functools.partial(baseline_batched, batch=args.bare_batch)),
            )
            for name, spec, consumers in same_work:
                w = same_world()
                side.baselines[name] = await bare_same_work(
                    *args_b, Mix(w, hooks.url, spec.prefix.upper()), w, spec=spec, consumers=consumers
                )
            for name, value in side.baselines.items():
                print(
                    f"  [{side.label}] baseline ({name}): {value:,.0f} events/s; "
                    f"ratio {side.ratio(name):.2f}",
                    flush=True,
                )
        half = max(1, round(side.saturation / 2))
        plan = [("half", half), *((str(r), r) for r in args.rates)]
        for label, r in plan:
            mix_r = Mix(world, hooks.url, f"R{label}")
            sent = await fixed_rate(integrator, api, mix_r, world, r, args.rate_seconds, sender)
            await checker.wait_quiet(args.drain, settle=0.5)
            lat = await latencies(cluster.database_url, sent, smtp, hooks)
            row = {
                "label": label,
                "rate": r,
                "events": len(sent),
                "with_notifications": len(lat),
                "p50": pct(lat, 50),
                "p95": pct(lat, 95),
                "p99": pct(lat, 99),
            }
            side.rates.append(row)
            print(
                f"  [{side.label}] rate {r}/s{' (half of saturation)' if label == 'half' else ''} for "
                f"{args.rate_seconds:.0f}s: {len(sent)} events, {len(lat)} with notifications; "
                f"p50 {row['p50']:.0f} ms p95 {row['p95']:.0f} ms p99 {row['p99']:.0f} ms",
                flush=True,
            )
        stop.set()
        await sampler
        side.rss_mb = {name: peak / 1e6 for name, peak in cluster.peak_rss().items()}
        await api.close()
        await integrator.close()
    finally:
        stop.set()
        await asyncio.to_thread(cluster.stop)
        await hooks.stop()
        smtp.stop()
        shutil.rmtree(cluster.data_dir, ignore_errors=True)
    side.seconds = time.monotonic() - t_side


# ------------------------------------------------------------------------------------------------------
# the report


def _num(x: float, unit: str = "") -> str:
    return "n/a" if x != x else f"{x:,.0f}{unit}"  # noqa: PLR0124 - NaN


def _ms(x: float) -> str:
    return "n/a" if x != x else (f"{x:,.0f} ms" if x < 10_000 else f"{x / 1000:,.1f} s")  # noqa: PLR0124


Row = dict[str, str]
Value: TypeAlias = "Callable[[Side], str]"  # a figure of one side, as the report prints it


def _row(
    sides: list[Side], figure: str, value: Value, ratio: str = "", target: str = "", ok: bool | None = None
) -> Row:
    """A row of the report: ``value`` of each side, the verdict (``ok``) on this tree's column."""
    this, prev = sides[-1], (sides[0] if len(sides) > 1 else None)
    return {
        "figure": figure,
        "previous": value(prev) if prev else "",
        "this": value(this),
        "ratio": ratio,
        "target": target,
        "verdict": "" if ok is None else ("met" if ok else "MISSED"),
    }


def _baseline_value(name: str) -> Value:
    return lambda s: _num(s.baselines.get(name, float("nan")))


def _ratio_value(name: str) -> Value:
    return lambda s: f"{s.ratio(name):.2f}"


def _rss_value(name: str) -> Value:
    return lambda s: _num(s.rss_mb.get(name, float("nan")), " MB")


def _latency_value(label: str) -> Value:
    def value(s: Side) -> str:
        for r in s.rates:
            if r["label"] == label:
                rate = f"{r['rate']}/s: " if label == "half" else ""
                return f"{rate}{_ms(r['p50'])} / {_ms(r['p99'])}"
        return "n/a"

    return value


def _baseline_rows(sides: list[Side]) -> list[Row]:
    this, rows = sides[-1], []
    for name, what in (
        ("batched", "bare, same work, batched"),
        ("equivalent", "bare, same work, one commit per message"),
        ("minimal", "minimal bare"),
    ):
        if name not in this.baselines:
            continue
        rows.append(_row(sides, f"{what} (events/s)", _baseline_value(name)))
        judged = name == "batched"
        rows.append(
            _row(
                sides,
                f"saturation / {what}",
                _ratio_value(name),
                "",
                f">= {GOAL_RATIO}" if judged else "",
                this.ratio(name) >= GOAL_RATIO if judged else None,
            )
        )
    return rows


def _latency_rows(sides: list[Side]) -> list[Row]:
    this, rows = sides[-1], []
    for label in (r["label"] for r in this.rates):
        target, ok = "", None
        if label == "half":
            target, ok = f"p99 < {GOAL_P99_HALF_MS:.0f} ms", this.p99_at("half") < GOAL_P99_HALF_MS
        elif label == str(GOAL_P99_AT_RATE):
            target, ok = f"p99 < {GOAL_P99_AT_RATE_MS:.0f} ms", this.p99_at(label) < GOAL_P99_AT_RATE_MS
        what = "half of saturation" if label == "half" else f"{label} events/s"
        rows.append(_row(sides, f"p50 / p99 at {what}", _latency_value(label), "", target, ok))
    return rows


def table(sides: list[Side]) -> list[Row]:
    """The report's rows: a figure, each side's value, this ÷ previous, the target, met or MISSED (judged
    on this tree's column)."""
    this = sides[-1]
    prev = sides[0] if len(sides) > 1 else None
    sat_ratio = this.saturation / prev.saturation if prev and prev.saturation else float("nan")
    rows = [
        _row(
            sides,
            "saturation (events/s)",
            lambda s: _num(s.saturation),
            f"{sat_ratio:.2f}" if prev else "",
            f">= {GOAL_SATURATION_X:.0f}x previous" if prev else "",
            sat_ratio >= GOAL_SATURATION_X if prev else None,
        ),
        *_baseline_rows(sides),
        *_latency_rows(sides),
    ]
    rows += [
        _row(sides, f"peak RSS {name}", _rss_value(name), "", f"< {GOAL_RSS_MB:.0f} MB", mb < GOAL_RSS_MB)
        for name, mb in this.rss_mb.items()
    ]
    return rows


def print_table(header: dict[str, Any], sides: list[Side], rows: list[Row]) -> None:
    print(
        f"\nwhole system, {header['date']}, {header['host']} {header['machine']} {header['cores']} cores, "
        f"Python {header['python']}, fsync {header['fsync_per_s']:,.0f}/s ({header['fsync_by']})"
    )
    for s in sides:
        print(f"  {s.label}: {s.code} ({s.seconds:.0f} s)")
    ab = len(sides) > 1
    cols = ["figure", *(["previous"] if ab else []), "this", *(["ratio"] if ab else []), "target", "verdict"]
    names = {
        "figure": "figure",
        "previous": f"previous release ({sides[0].code[:7]})" if ab else "",
        "this": "this tree",
        "ratio": "this / previous",
        "target": "target",
        "verdict": "",
    }
    widths = {c: max(len(names[c]), *(len(r[c]) for r in rows)) for c in cols}
    print("| " + " | ".join(names[c].ljust(widths[c]) for c in cols) + " |")
    print("|" + "|".join("-" * (widths[c] + 2) for c in cols) + "|")
    for r in rows:
        print("| " + " | ".join(r[c].ljust(widths[c]) for c in cols) + " |")


async def main_async(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="kumkm-bench-"))
    try:
        if args.slow_fsync > 0:
            # before every child process: Postgres and pg_test_fsync inherit the preload
            os.environ.update(slow_disk.environment(slow_disk.build(scratch), args.slow_fsync))
        fsync, fsync_by = fsync_rate(scratch)
        if args.slow_fsync > 0:
            fsync_by += f", every fsync slowed by {args.slow_fsync:g} ms (--slow-fsync)"
        header = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "host": platform.node(),
            "machine": platform.machine(),
            "cores": psutil.cpu_count() or 0,
            "python": platform.python_version(),
            "fsync_per_s": round(fsync),
            "fsync_by": fsync_by,
            "slow_fsync_ms": args.slow_fsync,
            "backlog": args.backlog,
            "rates": args.rates,
            "rate_seconds": args.rate_seconds,
        }
        print(
            f"bench.system {header['date']} on {header['host']} "
            f"({header['machine']}, {header['cores']} cores), Python {header['python']}, "
            f"fsync {fsync:,.0f}/s ({fsync_by})",
            flush=True,
        )
        sides: list[Side] = []
        if args.ab:
            commit, path = extract_release(args.ab, scratch)
            sides.append(Side("previous", commit, path))
        sides.append(Side("this", "working tree"))
        for side in sides:
            print(f"{side.label}: {side.code}", flush=True)
            await run_side(side, args)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rows = table(sides)
    print_table(header, sides, rows)
    profiles = print_profiles(args.profile, [s.label for s in sides], SERVICES) if args.profile else {}
    total = time.monotonic() - t0
    print(f"\nthe run took {total / 60:.1f} min")
    if args.json:
        doc = {
            "header": header | {"seconds": round(total)},
            "sides": [dataclasses.asdict(s) for s in sides],
            "rows": rows,
            "profiles": profiles,
        }
        args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        print(f"results in {args.json}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.system",
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--backlog", type=int, default=int(os.environ.get("KUMKM_BENCH_BACKLOG", "3000")))
    parser.add_argument(
        "--rates",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[100],
        help="fixed rates in events/s, besides half of saturation (default 100)",
    )
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    parser.add_argument("--drain", type=float, default=120.0, help="longest wait for a run to settle")
    parser.add_argument(
        "--ab",
        nargs="?",
        const=PREVIOUS_RELEASE,
        default=None,
        metavar="REF",
        help=f"run the previous release's services first (default REF {PREVIOUS_RELEASE}), then this tree's",
    )
    parser.add_argument(
        "--no-baselines", dest="baselines", action="store_false", help="skip the bare baselines"
    )
    parser.add_argument("--bare-batch", type=int, default=BAT_BATCH, help="the batched baseline's pull size")
    parser.add_argument(
        "--profile", type=Path, default=None, metavar="DIR", help="py-spy each service (saturation)"
    )
    parser.add_argument(
        "--slow-fsync",
        type=float,
        default=0.0,
        metavar="MS",
        help="emulate a slower disk: every fsync of Postgres waits MS ms first (bench/slow_disk.py)",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the results as JSON")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
