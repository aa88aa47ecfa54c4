"""Restructuring requests per second, end to end, on a loan book of 100,000 loans.

    python bench/loans_restructuring.py [--loans 100000] [--requests 2000]

Starts NATS, Postgres (embedded unless KUMKM_NATS_URL and KUMKM_DATABASE_URL are set) and the embedded OpenID
provider (the service verifies tokens from it, as every service must), bulk-loads the
loan book with COPY (loans) and one set-based INSERT (their schedules), then measures two things in the
same run, each on its own set of loans:

- service: the loans service in this process (FastStream consumer, inbox, handler, policy, outbox, relay):
  from the first request published until the last ``restructuring.approved`` event is on the stream;
- bare baseline: raw nats-py and asyncpg doing the same reads and writes (inbox row, request row, loan
  and schedule reads, grade at the cut-off, open requests, the same schedule maths, supersede and insert
  the schedule, loan update, history and decision rows), publishing the approved event straight to
  JetStream after commit, with no framework, validation or outbox around it.

Prints both rates and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import nats
from nats.js import api
from pydantic import SecretStr

from kumkm_loans import repository as repo
from kumkm_loans.app import build
from kumkm_loans.domain import Terms, build_schedule, plan_restructuring
from kumkm_loans.settings import LoansSettings
from kumkm_shared import InfraSettings, ServiceRuntime
from kumkm_shared.contracts import make_event
from kumkm_shared.contracts.loans import (
    GraceOn,
    GracePeriod,
    Impact,
    RepaymentMethod,
    RestructuringReason,
    RestructuringRequested,
    Scheme,
    TenorExtension,
)
from kumkm_shared.db.pool import create_pool
from kumkm_shared.integrators import IntegratorRole, sender_subject
from kumkm_shared.mandates import ALL_PARTIES, Grant, Mandate, MandateBook
from kumkm_shared.messaging.broker import install_uvloop
from kumkm_shared.messaging.provision import provision
from kumkm_shared.messaging.topology import consumer
from kumkm_shared.servers import free_port, obtain_servers
from kumkm_shared.servers.oidc import EmbeddedIdentityProvider

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

REQUESTED = RestructuringRequested.event_type
# The requests come from one cooperative federation's system (an induk koperasi) acting for every member
# cooperative: the book has 5,000 generated cooperatives, too many to list, so its mandate is "*".
FEDERATION = "induk-koperasi-bench"
SUBJECT = sender_subject(REQUESTED, FEDERATION)
APPROVED = "kumkm.loans.restructuring.approved.v1"
PROVINCES = [
    ("Jawa Barat", "Kota Bekasi"),
    ("Jawa Barat", "Kota Bandung"),
    ("DKI Jakarta", "Jakarta Timur"),
    ("Jawa Tengah", "Kota Semarang"),
    ("Jawa Timur", "Kota Surabaya"),
]
FIRST_DUE = date(2019, 7, 15)
BORROWER_NAME = "Koperasi Pasar {n}"
POOL_MAX = 10
BATCH = 64


# -- the loan book ------------------------------------------------------------------------------------


def templates() -> list[tuple[Decimal, Decimal, int, RepaymentMethod]]:
    principals = [Decimal(p) * 50_000_000 for p in (1, 2, 4, 8, 16, 30, 50, 80)]
    rates = [Decimal("0.045"), Decimal("0.06")]
    tenors = [12, 24, 36]
    return [(p, r, t, m) for p in principals for r in rates for t in tenors for m in RepaymentMethod]


async def load_book(dsn: str, count: int) -> None:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "loans, public"})
    try:
        kinds = templates()
        started = time.perf_counter()
        rows = []
        for t, (principal, rate, tenor, method) in enumerate(kinds):
            schedule = build_schedule(principal, rate, tenor, method, FIRST_DUE)
            rows += [(t, i.no, i.due_on, i.principal, i.interest, i.balance) for i in schedule.installments]
        await conn.execute(
            "CREATE TEMP TABLE tmpl (template int, no int, due_on date, principal numeric, interest numeric, "
            "balance numeric)"
        )
        await conn.copy_records_to_table("tmpl", records=rows)
        book = []
        for n in range(count):
            t = n % len(kinds)
            principal, rate, tenor, method = kinds[t]
            province, city = PROVINCES[n % len(PROVINCES)]
            coop = f"{3275000000000000 + n % 5000}"
            borrower = {
                "kind": "cooperative",
                "id": coop,
                "name": BORROWER_NAME.format(n=n % 5000),
                "region": {"province": province, "city": city},
            }
            maturity = FIRST_DUE.replace(
                year=FIRST_DUE.year + tenor // 12 - (1 if tenor % 12 == 0 else 0),
                month=6 if tenor % 12 == 0 else FIRST_DUE.month,
            )
            book.append(
                (
                    f"LN-{n:07d}",
                    "LPDB-KUMKM",
                    json.dumps(borrower),
                    "cooperative",
                    coop,
                    borrower["name"],
                    province,
                    city,
                    principal,
                    rate,
                    rate,
                    tenor,
                    method.value,
                    date(2019, 6, 15),
                    FIRST_DUE,
                    maturity,
                    principal,
                    t,
                )
            )
        await conn.execute("CREATE TEMP TABLE book_templates (loan_id text, template int)")
        columns = [
            "loan_id",
            "lender",
            "borrower",
            "borrower_kind",
            "borrower_id",
            "borrower_name",
            "province",
            "city",
            "principal",
            "original_rate",
            "annual_rate",
            "tenor_months",
            "method",
            "disbursed_on",
            "first_due_on",
            "maturity_on",
            "outstanding_principal",
        ]
        await conn.copy_records_to_table(
            "loans", records=[b[:-1] for b in book], columns=columns, schema_name="loans"
        )
        await conn.copy_records_to_table("book_templates", records=[(b[0], b[-1]) for b in book])
        await conn.execute(
            "INSERT INTO loans.installments (loan_id, schedule_version, no, due_on, principal, interest, "
            "capitalised_interest, balance, grace) "
            "SELECT b.loan_id, 0, t.no, t.due_on, t.principal, t.interest, 0, t.balance, false "
            "FROM book_templates b JOIN tmpl t USING (template)"
        )
        await conn.execute(
            "INSERT INTO loans.collectibility_history (loan_id, as_of, grade, days_past_due, cause) "
            "SELECT loan_id, disbursed_on, 1, 0, 'disbursed' FROM loans.loans"
        )
        # Vacuum now, so autovacuum does not wake up after the bulk load in the middle of a measurement.
        for table in ("loans", "installments", "collectibility_history"):
            await conn.execute(f"VACUUM ANALYZE loans.{table}")
        installments = await conn.fetchval("SELECT count(*) FROM loans.installments")
        print(
            f"loan book: {count:,} loans, {installments:,} installments "
            f"in {time.perf_counter() - started:.1f}s"
        )
    finally:
        await conn.close()


def requests_for(loan_ids: list[str]) -> list[bytes]:
    proposal: list[Scheme] = [GracePeriod(months=6, on=GraceOn.PRINCIPAL), TenorExtension(extra_months=12)]
    out = []
    for loan_id in loan_ids:
        data = RestructuringRequested(
            request_id=f"RR-{uuid.uuid4().hex[:12]}",
            loan_id=loan_id,
            requested_on=date(2020, 4, 20),
            reason=RestructuringReason.COVID19_DIRECT,
            impact=Impact(revenue_drop_pct=Decimal(55), note="PSBB"),
            proposal=proposal,
            reschedule_from=date(2020, 5, 15),
        )
        out.append(make_event(data, source="bench/integrator").to_json_bytes())
    return out


# -- measuring --------------------------------------------------------------------------------------------


async def publish_and_wait(nc: Client, payloads: list[bytes], limit: float = 600.0) -> tuple[float, int]:
    """Publish every request, wait for as many approved events; return (seconds, other outcomes)."""
    seen = 0
    others = 0
    done = asyncio.Event()

    async def on_approved(_: Msg) -> None:
        nonlocal seen
        seen += 1
        if seen >= len(payloads):
            done.set()

    async def on_other(_: Msg) -> None:
        nonlocal others
        others += 1

    sub = await nc.subscribe(APPROVED, cb=on_approved)
    other_subs = [
        await nc.subscribe(f"kumkm.loans.restructuring.{o}.v1", cb=on_other) for o in ("rejected", "referred")
    ]
    js = nc.jetstream(publish_async_max_pending=256)
    started = time.perf_counter()
    futures = []
    for payload in payloads:
        msg_id = json.loads(payload)["id"]
        futures.append(await js.publish_async(SUBJECT, payload, headers={"Nats-Msg-Id": msg_id}))
    await asyncio.gather(*futures)
    await asyncio.wait_for(done.wait(), limit)
    elapsed = time.perf_counter() - started
    await sub.unsubscribe()
    for other in other_subs:
        await other.unsubscribe()
    return elapsed, others


async def run_service(nats_url: str, dsn: str, issuer: str, payloads: list[bytes], *, profile: bool) -> float:
    infra = InfraSettings(
        nats_url=nats_url,
        auth_issuer=issuer,
        database_url=SecretStr(dsn),
        http_port=free_port(),
        consumer_batch=BATCH,
        db_pool_max=POOL_MAX,
        log_level="WARNING",
        log_format="console",
    )
    # Only this round's requests: the durable skips what the baseline rounds published.
    nc = await nats.connect(nats_url)
    decl = consumer("loans")
    await nc.jetstream().delete_consumer(decl.stream, decl.name)
    config = decl.config()
    config.deliver_policy = api.DeliverPolicy.NEW
    await nc.jetstream().add_consumer(decl.stream, config)
    await nc.drain()
    runtime = ServiceRuntime(build(LoansSettings(daily_tick=False)), infra)
    await runtime.start()
    quiet_access_log()
    nc = await nats.connect(nats_url)
    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="disabled")
        profiler.start()
    try:
        elapsed, others = await publish_and_wait(nc, payloads)
    finally:
        if profiler is not None:
            profiler.stop()
            profiler.print(show_all=False)
        await nc.drain()
        await runtime.stop()
    if others:
        raise RuntimeError(f"{others} requests were not approved")
    return len(payloads) / elapsed


def quiet_access_log() -> None:
    # FastStream writes two INFO access lines per message; the service runs at WARNING here, like the
    # baseline, which logs nothing.
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("faststream"):
            logging.getLogger(name).setLevel(logging.WARNING)


class Bare:
    """The same reads and writes with raw nats-py and asyncpg, no framework around them."""

    def __init__(self, pool: asyncpg.Pool, nc: Client) -> None:
        self.pool = pool
        self.js = nc.jetstream()
        self.settings = LoansSettings()

    async def handle(self, msg: Msg) -> None:
        event = json.loads(msg.data)
        data = event["data"]
        async with self.pool.acquire() as conn, conn.transaction():
            fresh = await conn.fetchval(
                "INSERT INTO inbox (consumer, event_id, event_type) VALUES ('bare', $1, $2) "
                "ON CONFLICT DO NOTHING RETURNING true",
                uuid.UUID(event["id"]),
                event["type"],
            )
            if not fresh:
                await msg.ack()
                return
            await conn.execute(
                "INSERT INTO restructuring_requests (request_id, loan_id, event_id, requested_on, reason, "
                "impact, proposal, reschedule_from, status) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'received') "
                "ON CONFLICT (request_id) DO NOTHING",
                data["request_id"],
                data["loan_id"],
                uuid.UUID(event["id"]),
                date.fromisoformat(data["requested_on"]),
                data["reason"],
                data["impact"],
                data["proposal"],
                date.fromisoformat(data["reschedule_from"]),
            )
            record = await repo.load_loan(conn, data["loan_id"], lock=True)
            assert record is not None  # noqa: S101
            await repo.grade_as_of(conn, data["loan_id"], self.settings.collectibility_cutoff)
            await repo.open_requests(conn, data["loan_id"], other_than=data["request_id"])
            reschedule_from = date.fromisoformat(data["reschedule_from"])
            terms = Terms(
                grace_months=data["proposal"][0]["months"], extra_months=data["proposal"][1]["extra_months"]
            )
            loan = record.loan
            plan = plan_restructuring(loan, terms, reschedule_from)
            kept = [i for i in loan.installments if i.due_on < reschedule_from and i.is_paid]
            for inst in plan.schedule.installments:
                inst.version = loan.schedule_version + 1
            await repo.supersede(conn, loan.loan_id, kept)
            await repo.insert_installments(conn, loan.loan_id, plan.schedule.installments)
            loan.installments = kept + plan.schedule.installments
            loan.schedule_version += 1
            loan.restructure_count += 1
            loan.collectibility = 1
            await repo.update_loan_state(conn, loan, days_past_due=0, graded_on=reschedule_from)
            await repo.record_grade(conn, loan.loan_id, reschedule_from, 1, 0, "restructuring")
            summary = {
                "installments": len(plan.schedule.installments),
                "regular_installment": f"{plan.schedule.regular_installment:.2f}",
                "grace_months": plan.schedule.grace_months,
                "annual_rate": str(plan.schedule.annual_rate),
                "first_due_on": plan.schedule.first_due_on.isoformat(),
                "maturity_on": plan.schedule.maturity_on.isoformat(),
                "outstanding_principal": f"{plan.base_principal:.2f}",
                "total_interest_before": f"{plan.total_interest_before:.2f}",
                "total_interest_after": f"{plan.total_interest_after:.2f}",
            }
            await conn.execute(
                "UPDATE restructuring_requests SET status = 'approved', borrower_id = $2, "
                "borrower_name = $3, province = $4, city = $5, outstanding_principal = $6, summary = $7, "
                "decided_by = 'policy', "
                "decided_at = now(), decided_on = $8 WHERE request_id = $1",
                data["request_id"],
                record.borrower.id,
                record.borrower.name,
                record.borrower.region.province,
                record.borrower.region.city,
                plan.base_principal,
                summary,
                date.fromisoformat(data["requested_on"]),
            )
        approved = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "bench/bare",
            "type": APPROVED,
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "subject": data["request_id"],
            "causationid": event["id"],
            "data": {
                "request_id": data["request_id"],
                "loan_id": data["loan_id"],
                "borrower": record.borrower.model_dump(mode="json"),
                "decided_by": "policy",
                "decided_at": datetime.now(UTC).isoformat(),
                "reason_codes": [],
                "terms": data["proposal"],
                "reschedule_from": data["reschedule_from"],
                "summary": summary,
                "note": "",
            },
        }
        body = json.dumps(approved).encode()
        await self.js.publish(APPROVED, body, headers={"Nats-Msg-Id": approved["id"]})
        await msg.ack()

    async def consume(self, stop: asyncio.Event) -> None:
        sub = await self.js.pull_subscribe_bind("bare", stream="KUMKM_LOANS")
        while not stop.is_set():
            try:
                msgs = await sub.fetch(BATCH, timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            await asyncio.gather(*(self.handle(m) for m in msgs))


async def run_bare(nats_url: str, dsn: str, payloads: list[bytes]) -> float:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_consumer(
        "KUMKM_LOANS",
        api.ConsumerConfig(
            durable_name="bare",
            deliver_policy=api.DeliverPolicy.NEW,
            ack_policy=api.AckPolicy.EXPLICIT,
            filter_subject=SUBJECT,
            max_ack_pending=1000,
            ack_wait=30,
        ),
    )
    pool = await create_pool(dsn, "loans", max_size=POOL_MAX)
    stop = asyncio.Event()
    worker = asyncio.create_task(Bare(pool, nc).consume(stop))
    try:
        elapsed, others = await publish_and_wait(nc, payloads)
    finally:
        stop.set()
        await worker
        await pool.close()
        await js.delete_consumer("KUMKM_LOANS", "bare")
        await nc.drain()
    if others:
        raise RuntimeError(f"{others} requests were not approved")
    return len(payloads) / elapsed


async def bench(args: argparse.Namespace) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="kumkm-bench-") as tmp,
        EmbeddedIdentityProvider(Path(tmp) / "oidc") as provider,
    ):
        handle = obtain_servers(Path(tmp), fsync=False)
        try:
            nats_url, dsn, issuer = handle.nats_url, handle.database_url, provider.issuer
            nc = await nats.connect(nats_url)
            await provision(nc.jetstream())
            await MandateBook(nc.jetstream()).put(
                Mandate(
                    organisation=FEDERATION,
                    name="Induk koperasi (benchmark)",
                    grants=(Grant(role=IntegratorRole.COOPERATIVE, parties=(ALL_PARTIES,)),),
                    granted_by="bench",
                )
            )
            await nc.drain()
            # Start once to migrate the schema, then load the book.
            infra = InfraSettings(
                nats_url=nats_url,
                database_url=SecretStr(dsn),
                http_port=free_port(),
                log_level="WARNING",
                auth_issuer=issuer,
            )
            runtime = ServiceRuntime(build(LoansSettings(daily_tick=False)), infra)
            await runtime.start()
            await runtime.stop()
            await load_book(dsn, args.loans)
            # Each round restructures loans of its own; the order alternates so neither side is always first.
            chosen = iter(random.Random(7).sample(range(args.loans), 2 * (args.rounds + 1) * args.requests))
            service_rates: list[float] = []
            bare_rates: list[float] = []
            # Warm up both paths (connections, plans, caches after the bulk load); not measured.
            warm = max(50, args.requests // 10)
            await run_service(
                nats_url,
                dsn,
                issuer,
                requests_for([f"LN-{next(chosen):07d}" for _ in range(warm)]),
                profile=False,
            )
            await run_bare(nats_url, dsn, requests_for([f"LN-{next(chosen):07d}" for _ in range(warm)]))
            for round_no in range(args.rounds):
                ids = {side: [f"LN-{next(chosen):07d}" for _ in range(args.requests)] for side in ("s", "b")}
                order = ("s", "b") if round_no % 2 == 0 else ("b", "s")
                for side in order:
                    if side == "s":
                        service_rates.append(
                            await run_service(
                                nats_url,
                                dsn,
                                issuer,
                                requests_for(ids["s"]),
                                profile=args.profile and round_no == 0,
                            )
                        )
                    else:
                        bare_rates.append(await run_bare(nats_url, dsn, requests_for(ids["b"])))
                print(f"round {round_no + 1}: service {service_rates[-1]:.1f}/s, bare {bare_rates[-1]:.1f}/s")
        finally:
            handle.stop()
    service_rate, bare_rate = statistics.median(service_rates), statistics.median(bare_rates)
    print(
        f"servers: {handle.mode}; python {platform.python_version()}; {args.loans:,} loans; "
        f"{args.requests} requests per side per round; {args.rounds} rounds (medians below)"
    )
    print(
        f"service:       {service_rate:8.1f} restructurings/s (request published -> approved on the stream)"
    )
    print(f"bare baseline: {bare_rate:8.1f} restructurings/s (raw nats-py + asyncpg, same reads and writes)")
    print(f"ratio:         {service_rate / bare_rate:8.1%} of the bare baseline (goal >= 60%)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loans", type=int, default=100_000, help="loans on the book")
    parser.add_argument("--requests", type=int, default=2000, help="restructuring requests per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating measurement rounds (median)")
    parser.add_argument("--profile", action="store_true", help="profile the service run with pyinstrument")
    args: Any = parser.parse_args(argv)
    install_uvloop()
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
