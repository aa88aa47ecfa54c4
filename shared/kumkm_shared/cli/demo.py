"""The demo flow of ``kumkm up --demo``: the Kranggan story, as integrators, officers and curators would
drive it, each signed in through the OpenID provider as a demo user of the realm.

The core banking system's disbursement is published on the stream (no route takes it); everything else goes
through the services' HTTP APIs with the bearer token of whoever would do it: the ``integrator-demo`` service
account (client credentials) writes contacts, submits the product, places the order and reports its steps;
``officer.bekasi`` files the restructuring request and decides it if the policy refers it, and
``supervisor.bekasi`` gives the second approval when one is needed; ``curator.bekasi`` curates. It contains
no business rules: every decision shown is made by the services, and no superuser takes part.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from kumkm_shared.cli.connect import connect
from kumkm_shared.cli.follow import follow
from kumkm_shared.cli.seed import sample_sellers
from kumkm_shared.cli.signin import DemoRealm, demo_tokens
from kumkm_shared.contracts import spec_for, validate_event_payload
from kumkm_shared.integrators import IntegratorRole, sender_subject
from kumkm_shared.mandates import Grant, Mandate, MandateBook
from kumkm_shared.messaging.outbox import nats_headers

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from nats.js import JetStreamContext
    from rich.console import Console

    from kumkm_shared.auth.client import TokenSet
    from kumkm_shared.cli.runinfo import RunInfo

REGION = {"province": "Jawa Barat", "city": "Kota Bekasi"}
COOPERATIVE = {
    "kind": "cooperative",
    "id": "3275010101010001",
    "name": "Koperasi Pedagang Pasar Kranggan",
    "region": REGION,
}
# A second cooperative of the city, whose large loan's request is referred to an officer: above the
# second-approval threshold, the officer's approval waits for a supervisor (maker-checker).
JATISAMPURNA = {
    "kind": "cooperative",
    "id": "3275010101010002",
    "name": "Koperasi Simpan Pinjam Jatisampurna",
    "region": REGION,
}
SELLER = {
    "nib": "9120001234567",
    "name": "CV Meubel Jati Kranggan",
    "scale": "small",
    "cooperative_id": "3275010101010001",
    "region": REGION,
}
LENDER = "LPDB-KUMKM"
# The demo's integrator organisations and their mandates (``kumkm integrators add`` records the same):
# LPDB-KUMKM's core banking system publishes disbursements on the bus as ``lpdb-kumkm``; the
# ``integrator-demo`` service account (HTTP) is the seller's and the buyer's procurement system.
LENDER_ORG = "lpdb-kumkm"
INTEGRATOR_ORG = "integrator-demo"
BUYER = {
    "id": "DISDIK-KOTA-BEKASI",
    "name": "Dinas Pendidikan Kota Bekasi",
    "kind": "local_government",
    "work_unit": "Bidang Sarana Prasarana",
    "commitment_official": "Rina Wulandari",
    "region": REGION,
}


def _event(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "kumkm/demo",
        "type": event_type,
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }


def maker_checker_events(suffix: str) -> list[dict[str, Any]]:
    """A Rp1.8 billion loan and a request the policy refers (not a COVID-19 reason), for the demo's
    maker-checker: officer.bekasi approves first, supervisor.bekasi second."""
    loan_id = f"LN-DEMO-{suffix}-2"
    return [
        _event(
            "kumkm.loans.loan.disbursed.v1",
            {
                "loan_id": loan_id,
                "lender": LENDER,
                "borrower": JATISAMPURNA,
                "principal": "1800000000.00",
                "annual_rate": "0.06",
                "tenor_months": 48,
                "method": "annuity",
                "disbursed_on": "2019-03-01",
                "first_due_on": "2019-04-01",
            },
        ),
        _event(
            "kumkm.loans.restructuring.requested.v1",
            {
                "request_id": f"RR-DEMO-{suffix}-2",
                "loan_id": loan_id,
                "requested_on": "2020-05-04",
                "reason": "other",
                "impact": {"revenue_drop_pct": "30", "note": "Anggota menunda angsuran"},
                "proposal": [{"scheme": "tenor_extension", "extra_months": 12}],
                "reschedule_from": "2020-06-01",
            },
        ),
    ]


def demo_events(suffix: str) -> list[dict[str, Any]]:
    loan_id, product_id = f"LN-DEMO-{suffix}", f"PRD-DEMO-{suffix}"
    now = datetime.now(UTC).isoformat()
    return [
        _event(
            "kumkm.notifications.contact.upserted.v1",
            {
                "party_id": COOPERATIVE["id"],
                "party_kind": "cooperative",
                "name": COOPERATIVE["name"],
                "email": "pengurus@kranggan.example.id",
                "locale": "id_ID",
                "channels": ["email", "inbox"],
                "opt_outs": [],
                "updated_at": now,
            },
        ),
        _event(
            "kumkm.notifications.contact.upserted.v1",
            {
                "party_id": SELLER["nib"],
                "party_kind": "umkm",
                "name": SELLER["name"],
                "email": "meubel@kranggan.example.id",
                "locale": "id_ID",
                "channels": ["email", "inbox"],
                "opt_outs": [],
                "updated_at": now,
            },
        ),
        _event(
            "kumkm.loans.loan.disbursed.v1",
            {
                "loan_id": loan_id,
                "lender": LENDER,
                "borrower": COOPERATIVE,
                "principal": "2500000000.00",
                "annual_rate": "0.06",
                "tenor_months": 60,
                "method": "annuity",
                "disbursed_on": "2019-06-15",
                "first_due_on": "2019-07-15",
            },
        ),
        _event(
            "kumkm.loans.restructuring.requested.v1",
            {
                "request_id": f"RR-DEMO-{suffix}",
                "loan_id": loan_id,
                "requested_on": "2020-04-15",
                "reason": "covid19_direct",
                "impact": {"revenue_drop_pct": "45", "note": "Pasar sepi selama PSBB"},
                "proposal": [
                    {"scheme": "grace_period", "months": 6, "on": "principal"},
                    {"scheme": "tenor_extension", "extra_months": 12},
                ],
                "reschedule_from": "2020-05-15",
            },
        ),
        _event(
            "kumkm.catalog.product.submitted.v1",
            {
                "product_id": product_id,
                "revision": 1,
                "seller": SELLER,
                "name": "Meja belajar kayu jati",
                "category": "furniture",
                "unit": "pcs",
                "unit_price": "1250000.00",
                "min_order_qty": 10,
                "stock": 200,
                "tkdn_pct": "85",
                "certifications": ["sni"],
                "description": "Meja belajar siswa, kayu jati, finishing natural.",
            },
        ),
    ]


def order_event(suffix: str) -> dict[str, Any]:
    return _event(
        "kumkm.catalog.order.placed.v1",
        {
            "order_id": f"ORD-DEMO-{suffix}",
            "buyer": BUYER,
            "budget": {"rup_code": "RUP-32750001", "fiscal_year": 2021},
            "lines": [{"product_id": f"PRD-DEMO-{suffix}", "qty": 40, "unit_price": "1250000.00"}],
            "delivery": {"address": "Jl. Ir. H. Juanda No. 100, Kota Bekasi", "needed_by": "2021-07-01"},
        },
    )


def lifecycle_events(suffix: str, now: datetime | None = None) -> list[dict[str, Any]]:
    """The seller confirms and ships, the buyer signs the handover record (BAST) and pays: in that order."""
    now = now or datetime.now(UTC)
    refs = {"order_id": f"ORD-DEMO-{suffix}", "buyer": {"id": BUYER["id"]}, "seller": {"nib": SELLER["nib"]}}
    today = now.date().isoformat()
    return [
        _event("kumkm.catalog.order.confirmed.v1", {**refs, "confirmed_at": now.isoformat()}),
        _event("kumkm.catalog.order.shipped.v1", {**refs, "shipped_at": now.isoformat(), "carrier": "JNE"}),
        _event(
            "kumkm.catalog.order.delivered.v1",
            {**refs, "bast_number": f"BAST/DISDIK/{suffix}", "delivered_on": today, "received_by": "Rina W."},
        ),
        _event(
            "kumkm.catalog.order.paid.v1",
            {**refs, "amount": "50000000.00", "paid_on": today, "payment_reference": f"SP2D/{suffix}"},
        ),
    ]


INTEGRATOR = INTEGRATOR_ORG  # the service account's client id, whose token carries the same organisation
OFFICER, SUPERVISOR, CURATOR = "officer.bekasi", "supervisor.bekasi", "curator.bekasi"
OPERATOR = "operator"  # writes the parties' contacts (personal data)
LOAN_WAIT = 20.0  # seconds the demo waits for the loans service to take in the disbursement


def demo_mandates() -> list[Mandate]:
    """The mandates the demo's organisations hold: each acts only for its own parties."""
    return [
        Mandate(
            organisation=LENDER_ORG,
            name="LPDB-KUMKM core banking",
            grants=(Grant(role=IntegratorRole.LENDER, parties=(LENDER,)),),
            granted_by="kumkm up --demo",
        ),
        Mandate(
            organisation=INTEGRATOR_ORG,
            name="Demo seller and buyer systems",
            grants=(
                # The Kranggan seller, and the sellers of the Kota Bekasi sample's e-catalog sales.
                Grant(role=IntegratorRole.SELLER, parties=(SELLER["nib"], *sample_sellers())),
                Grant(role=IntegratorRole.BUYER, parties=(BUYER["id"],)),
            ),
            granted_by="kumkm up --demo",
        ),
    ]


async def record_demo_mandates(js: JetStreamContext) -> None:
    book = MandateBook(js)
    await book.ensure_bucket()
    for mandate in demo_mandates():
        current = await book.get(mandate.organisation)
        if current is None or not current.active:
            await book.put(mandate)
            continue
        # An earlier run's mandate: widen each grant to the parties the demo needs now, keeping its users.
        grants = list(current.grants)
        for wanted in mandate.grants:
            held = current.grant(wanted.role)
            if held is None:
                grants.append(wanted)
            elif not set(wanted.parties) <= set(held.parties):
                parties = tuple(dict.fromkeys((*held.parties, *wanted.parties)))
                grants[grants.index(held)] = held.model_copy(update={"parties": parties})
        if grants != list(current.grants):
            await book.put(current.model_copy(update={"grants": tuple(grants)}))


async def _publish(
    js: JetStreamContext, obj: dict[str, Any], console: Console, *, sender: str = LENDER_ORG
) -> None:
    event = validate_event_payload(obj)
    env = event.envelope
    subject = sender_subject(env.type, sender)
    console.print(f"[bold yellow]→ publish[/] {subject} [dim]{env.subject}[/]")
    await js.publish(
        subject, env.to_json_bytes(), headers=nats_headers(env), stream=spec_for(env.type).stream
    )


class DemoError(RuntimeError):
    """A demo step was refused; the message names who asked what and what the service answered."""


class Actors:
    """The demo's people and service account, each signed in through the provider on first use."""

    def __init__(self, issuer: str, realm: DemoRealm, http: httpx.AsyncClient, console: Console) -> None:
        self.issuer, self.realm, self.http, self.console = issuer, realm, http, console
        self._tokens: dict[str, TokenSet] = {}

    async def token(self, name: str) -> str:
        tokens = self._tokens.get(name)
        if tokens is None or tokens.expires_within(30):
            tokens = self._tokens[name] = await demo_tokens(self.issuer, self.realm, name, http=self.http)
        return tokens.bearer

    async def call(
        self, name: str, method: str, url: str, path: str, *, quiet: bool = False, **kwargs: Any
    ) -> httpx.Response:
        if not quiet:
            self.console.print(f"[bold yellow]→ {name}[/] {method} {path}")
        headers = {"Authorization": f"Bearer {await self.token(name)}"}
        response = await self.http.request(method, f"{url}{path}", headers=headers, **kwargs)
        if not quiet:
            status = ""
            with contextlib.suppress(ValueError):
                body = response.json()
                status = body.get("status", "") if isinstance(body, dict) else ""
            self.console.print(f"[bold yellow]  {name}[/] answered {response.status_code} {status}".rstrip())
        return response

    async def command(self, name: str, method: str, url: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A command that must succeed: its JSON answer, or a `DemoError` naming what was refused."""
        response = await self.call(name, method, url, path, **kwargs)
        if response.is_error:
            raise DemoError(f"{name} {method} {path}: {response.status_code} {response.text[:300]}")
        body: dict[str, Any] = response.json()
        return body


_DETAIL = (
    "decision",
    "reason_codes",
    "summary",
    "listed_price",
    "total",
    "channel",
    "party_id",
    "current",
    "days_past_due",
    "previous_status",
    "status",
)


async def _watch(js: JetStreamContext, console: Console, seconds: float, stop_after: set[str]) -> set[str]:
    """Print events newer than now for up to ``seconds``, stopping once all of ``stop_after`` appeared."""
    seen: set[str] = set()

    async def watch() -> None:
        async with contextlib.aclosing(follow(js, "kumkm.>")) as stream:
            async for msg in stream:
                seen.add(msg.subject)
                with contextlib.suppress(ValueError):
                    body = json.loads(msg.data)
                    data = body.get("data", {})
                    detail = {k: v for k, v in data.items() if k in _DETAIL}
                    subject = body.get("subject", "")
                    console.print(f"[bold green]← {msg.subject}[/] [dim]{subject}[/] {json.dumps(detail)}")
                if stop_after <= seen:
                    return

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(watch(), seconds)
    return seen


async def _step(js: JetStreamContext, console: Console, until: str, action: Awaitable[object]) -> None:
    """Watch the streams, run ``action``, and print consequences until ``until`` appears (or 20 s pass)."""
    watcher = asyncio.create_task(_watch(js, console, 20.0, {until}))
    await asyncio.sleep(0.3)  # the watcher is subscribed before anything is published
    try:
        await action
    finally:
        await watcher


def _contact_body(event: dict[str, Any]) -> dict[str, Any]:
    data = dict(event["data"])
    data.pop("party_id")
    data.pop("updated_at", None)
    return data


async def _contacts(actors: Actors, notifications: str, events: list[dict[str, Any]]) -> None:
    for event in events:
        party = event["data"]["party_id"]
        await actors.command(OPERATOR, "PUT", notifications, f"/contacts/{party}", json=_contact_body(event))


async def _wait_for_loan(actors: Actors, loans: str, loan_id: str) -> None:
    deadline = asyncio.get_running_loop().time() + LOAN_WAIT
    while True:
        response = await actors.call(OFFICER, "GET", loans, f"/loans/{loan_id}", quiet=True)
        if response.status_code == httpx.codes.OK:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise DemoError(f"the loans service did not take in {loan_id} within {LOAN_WAIT:.0f}s")
        await asyncio.sleep(0.3)


async def _restructure(actors: Actors, loans: str, request: dict[str, Any], console: Console) -> None:
    """The officer files the request; the policy decides it at once, or refers it to the officer; an
    approval above the second-approval threshold waits for a supervisor (maker-checker)."""
    answer = await actors.command(OFFICER, "POST", loans, "/restructurings", json=request)
    path = f"/restructurings/{answer['request_id']}/decision"
    if answer["status"] == "referred":
        decision = {"decision": "approve", "reason": "Dampak COVID-19 terverifikasi saat kunjungan lapangan."}
        answer = await actors.command(OFFICER, "POST", loans, path, json=decision)
    if answer["status"] == "awaiting_second_approval":
        decision = {"decision": "approve", "reason": "Disetujui sebagai pemeriksa kedua."}
        answer = await actors.command(SUPERVISOR, "POST", loans, path, json=decision)
    console.print(f"[bold]restructuring {answer['request_id']}: {answer['status']}[/]")


async def _curate(actors: Actors, catalog: str, product_id: str) -> None:
    await actors.command(
        CURATOR,
        "POST",
        catalog,
        f"/products/{product_id}/curation",
        json={
            "decision": "approved",
            "tier": "local",
            "notes": "Lengkap; TKDN 85%.",
            "checklist": [{"item": "documents_complete", "passed": True}],
        },
    )


def order_steps(suffix: str, now: datetime | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The HTTP form of `lifecycle_events`: each route of the order's steps and its body."""
    today = (now or datetime.now(UTC)).date().isoformat()
    return [
        ("confirm", {}),
        ("ship", {"carrier": "JNE"}),
        (
            "deliver",
            {"bast_number": f"BAST/DISDIK/{suffix}", "delivered_on": today, "received_by": "Rina W."},
        ),
        ("pay", {"payment_reference": f"SP2D/{suffix}", "paid_on": today}),
    ]


async def _demo(info: RunInfo, console: Console) -> None:
    if not info.auth_issuer or not info.auth_realm:
        console.print("[yellow]demo skipped: it signs in as the demo users of the embedded provider[/]")
        return
    suffix = uuid.uuid4().hex[:6].upper()
    contacts, disbursed, requested, product = demo_events(suffix)[:2], *demo_events(suffix)[2:]
    realm = DemoRealm.read(Path(info.auth_realm))
    async with (
        connect(info, name="kumkm-demo") as nc,
        httpx.AsyncClient(timeout=30) as http,
    ):
        js = nc.jetstream()
        await record_demo_mandates(js)
        actors = Actors(info.auth_issuer, realm, http, console)
        console.rule("[bold]demo: the Kranggan visit[/]")
        notifications = info.services.get("notifications")
        if notifications:
            await _contacts(actors, notifications, contacts)
        loans = info.services.get("loans")
        await _publish(js, disbursed, console)
        if loans:
            await _wait_for_loan(actors, loans, disbursed["data"]["loan_id"])
            request = requested["data"]
            await _step(
                js,
                console,
                "kumkm.loans.restructuring.approved.v1",
                _restructure(actors, loans, request, console),
            )
            large, large_request = maker_checker_events(suffix)
            await _publish(js, large, console)
            await _wait_for_loan(actors, loans, large["data"]["loan_id"])
            await _step(
                js,
                console,
                "kumkm.loans.restructuring.approved.v1",
                _restructure(actors, loans, large_request["data"], console),
            )
        catalog = info.services.get("catalog")
        if catalog:
            product_id = f"PRD-DEMO-{suffix}"
            submit = actors.command(INTEGRATOR, "POST", catalog, "/products", json=product["data"])
            await _step(js, console, "kumkm.catalog.product.submitted.v1", submit)
            await _step(js, console, "kumkm.catalog.product.curated.v1", _curate(actors, catalog, product_id))
            place = actors.command(INTEGRATOR, "POST", catalog, "/orders", json=order_event(suffix)["data"])
            await _step(js, console, "kumkm.catalog.order.accepted.v1", place)
            # Each step is the integrator's claim; the catalog's order.status_changed says it took effect.
            order_id = f"ORD-DEMO-{suffix}"
            for step, step_body in order_steps(suffix):
                call = actors.command(
                    INTEGRATOR, "POST", catalog, f"/orders/{order_id}/{step}", json=step_body
                )
                await _step(js, console, "kumkm.catalog.order.status_changed.v1", call)
        console.rule("[bold]demo done[/] — `kumkm tail` follows new events; Ctrl-C stops everything")


def run_demo(info: RunInfo, console: Console, data_dir: Path | None = None) -> None:
    """The Kota Bekasi sample first (``kumkm_shared.cli.seed``: the dashboard's numbers), then the story."""
    if data_dir is not None:
        from kumkm_shared.cli.seed import seed

        console.rule("[bold]demo: the Kota Bekasi sample[/]")
        try:
            asyncio.run(seed(info, data_dir, console))
        except Exception as exc:  # the sample is a show too; the story still runs
            console.print(f"[red]seed failed: {exc!r}[/]")
    try:
        asyncio.run(_demo(info, console))
    except Exception as exc:  # the demo is a show; the system keeps running if it stumbles
        console.print(f"[red]demo failed: {exc!r}[/]")
