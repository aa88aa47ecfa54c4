"""The demo flow of ``kumkm up --demo``: the Kranggan story, as integrators and officers would drive it.

It publishes integrator events (validated against the contracts first), drives the curator's step over
HTTP, and prints every consequence as it lands on the streams. It contains no business rules: every
decision shown is made by the services.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from kumkm_shared.cli.connect import connect
from kumkm_shared.cli.follow import follow
from kumkm_shared.contracts import spec_for, validate_event_payload
from kumkm_shared.messaging.outbox import nats_headers

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from nats.js import JetStreamContext
    from rich.console import Console

    from kumkm_shared.cli.runinfo import RunInfo

REGION = {"province": "Jawa Barat", "city": "Kota Bekasi"}
COOPERATIVE = {
    "kind": "cooperative",
    "id": "3275010101010001",
    "name": "Koperasi Pedagang Pasar Kranggan",
    "region": REGION,
}
SELLER = {
    "nib": "9120001234567",
    "name": "CV Meubel Jati Kranggan",
    "scale": "small",
    "cooperative_id": "3275010101010001",
    "region": REGION,
}
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
                "lender": "LPDB-KUMKM",
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


async def _publish(js: JetStreamContext, obj: dict[str, Any], console: Console) -> None:
    event = validate_event_payload(obj)
    env = event.envelope
    console.print(f"[bold yellow]→ publish[/] {env.type} [dim]{env.subject}[/]")
    await js.publish(
        env.type, env.to_json_bytes(), headers=nats_headers(env), stream=spec_for(env.type).stream
    )


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
    await action
    await watcher


async def _curate(catalog: str, product_id: str, console: Console) -> None:
    console.print(f"[bold yellow]→ curator[/] POST /products/{product_id}/curation (approve, tier local)")
    async with httpx.AsyncClient(base_url=catalog, timeout=10) as http:
        response = await http.post(
            f"/products/{product_id}/curation",
            json={
                "decision": "approved",
                "tier": "local",
                "curator": "curator-demo",
                "notes": "Lengkap; TKDN 85%.",
                "checklist": [{"item": "documents_complete", "passed": True}],
            },
        )
    console.print(f"[bold yellow]  curator[/] answered {response.status_code}")


async def _publish_all(js: JetStreamContext, events: list[dict[str, Any]], console: Console) -> None:
    for obj in events:
        await _publish(js, obj, console)


async def _demo(info: RunInfo, console: Console) -> None:
    suffix = uuid.uuid4().hex[:6].upper()
    async with connect(info, name="kumkm-demo") as nc:
        js = nc.jetstream()
        console.rule("[bold]demo: the Kranggan visit[/]")
        await _step(
            js,
            console,
            "kumkm.loans.restructuring.approved.v1",
            _publish_all(js, demo_events(suffix), console),
        )
        catalog = info.services.get("catalog")
        if catalog:
            product_id = f"PRD-DEMO-{suffix}"
            await _step(
                js, console, "kumkm.catalog.product.curated.v1", _curate(catalog, product_id, console)
            )
            await _step(
                js, console, "kumkm.catalog.order.accepted.v1", _publish(js, order_event(suffix), console)
            )
            # Each step is the integrator's claim; the catalog's order.status_changed says it took effect.
            for step in lifecycle_events(suffix):
                await _step(js, console, "kumkm.catalog.order.status_changed.v1", _publish(js, step, console))
        console.rule("[bold]demo done[/] — `kumkm tail` follows new events; Ctrl-C stops everything")


def run_demo(info: RunInfo, console: Console) -> None:
    try:
        asyncio.run(_demo(info, console))
    except Exception as exc:  # the demo is a show; the system keeps running if it stumbles
        console.print(f"[red]demo failed: {exc!r}[/]")
