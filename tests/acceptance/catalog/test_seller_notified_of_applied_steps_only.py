"""Catalog and notifications together: the seller hears of delivery and payment only when they took effect.

A buyer's system publishes ``order.paid`` before the goods are delivered, and again naming the wrong seller.
The catalog refuses both (dead letters); the seller must get no "payment settled" email for them, and exactly
one for the real payment, caused by the catalog's ``order.status_changed``. The buyer is told of each
refusal, caused by the catalog's ``order.step_refused``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

from kumkm_catalog.app import build as build_catalog
from kumkm_catalog.settings import CatalogSettings
from kumkm_notifications.app import build as build_notifications
from kumkm_shared.clock import FixedClock
from kumkm_shared.messaging.topology import consumer
from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import consumer_idle, dead_letters, running_service, stream_events
from tests.integration.catalog import samples
from tests.integration.catalog.conftest import THURSDAY, publish
from tests.integration.catalog.samples import listed_product
from tests.integration.notifications.conftest import nc, settings_for, smtp
from tests.integration.notifications.test_delivery import put_contact, settled, subject

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import httpx
    import nats

    from tests.integration.notifications.sinks import SmtpSink

pytestmark = pytest.mark.acceptance

__all__ = ["nc", "smtp"]

SELLER = samples.FURNITURE_MAKER["nib"]
BUYER = samples.DINAS_PENDIDIKAN_BEKASI["id"]
STATUS_CHANGED = "kumkm.catalog.order.status_changed.v1"
STEP_REFUSED = "kumkm.catalog.order.step_refused.v1"


@pytest_asyncio.fixture
async def system(
    nats_url: str, database_url: str, smtp: SmtpSink
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """The catalog and notifications services, each in its own schema of one database, on one NATS."""
    catalog = build_catalog(CatalogSettings(tick_interval_seconds=3600), clock=FixedClock(THURSDAY))
    # A parked step is given up on after 3 deliveries here (8 in production), to keep the test short.
    catalog.consumer_decls = {"catalog": replace(consumer("catalog"), max_deliver=3)}
    notifications = build_notifications(settings_for(smtp))
    async with (
        running_service(catalog, nats_url, database_url, consumer_batch=16) as (_, catalog_http),
        running_service(notifications, nats_url, database_url, consumer_batch=16) as (_, notifications_http),
    ):
        yield catalog_http, notifications_http


async def _idle(nc: nats.aio.client.Client) -> None:
    for name in ("catalog", "notifications-catalog"):
        await wait_for(lambda name=name: consumer_idle(nc, "KUMKM_CATALOG", name), timeout=30)


async def test_refused_steps_never_reach_the_seller_and_applied_ones_do_once(
    system: tuple[httpx.AsyncClient, httpx.AsyncClient], smtp: SmtpSink, nc: nats.aio.client.Client
) -> None:
    catalog, notifications = system
    await put_contact(
        notifications, SELLER, party_kind="umkm", name="Mebel Jati Kranggan", email="mebel@kranggan.id"
    )
    await put_contact(notifications, BUYER, party_kind="buyer", name="Disdik Bekasi", email="pbj@disdik.id")
    await listed_product(catalog, "PRD-ACC-1")
    order_id = (await catalog.post("/orders", json=samples.order("PRD-ACC-1"))).json()["order_id"]

    # A payment claimed before delivery is parked, then dead-lettered.
    early = samples.paid(order_id)
    await publish(nc, early)
    await wait_for(lambda: _letters(nc, 1), timeout=60)

    # The real steps, one after another, then a payment naming another seller: refused at once.
    steps: list[dict[str, Any]] = [
        samples.confirmed(order_id),
        samples.shipped(order_id),
        samples.delivered(order_id),
    ]
    for step in steps:
        await publish(nc, step)
    await wait_for(lambda: _status_is(catalog, order_id, "delivered"), timeout=30)
    wrong_seller = samples.ev(
        "order.paid",
        {
            **samples.parties(order_id, "9199999999999"),
            **{k: v for k, v in early["data"].items() if k not in {"order_id", "buyer", "seller"}},
        },
    )
    await publish(nc, wrong_seller)
    await wait_for(lambda: _letters(nc, 2), timeout=30)
    assert sorted(x.reason_code for x in await dead_letters(nc)) == ["out_of_order", "seller_mismatch"]
    steps.append(samples.paid(order_id))
    await publish(nc, steps[-1])
    await wait_for(lambda: _status_is(catalog, order_id, "paid"), timeout=30)
    await _idle(nc)

    # The seller: the curation, the new order, the signed handover and the payment, each once.
    rows = await settled(notifications, 4, party_id=SELLER)
    assert len(rows) == 4
    assert sorted(subject(m) for m in smtp.messages if "mebel@kranggan.id" in str(m["To"])) == sorted(
        [
            "Hasil kurasi produk Kursi siswa kayu jati: disetujui",
            f"BAST BAST/DISDIK/2024/0917 ditandatangani untuk pesanan {order_id}",
            f"Pembayaran Rp18.000.000 untuk pesanan {order_id} telah diterima",
            f"Pesanan baru {order_id} dari Dinas Pendidikan Kota Bekasi: Rp18.000.000",
        ]
    )
    changes = {e["id"]: e for e in await stream_events(nc, STATUS_CHANGED)}
    assert sorted(c["data"]["applied_event_id"] for c in changes.values()) == sorted(s["id"] for s in steps)
    applied = {c["data"]["applied_event_id"] for c in changes.values()}
    assert early["id"] not in applied
    assert wrong_seller["id"] not in applied
    # The buyer, whose system sent both refused payments, is told of each, with the reason.
    refusals = {e["data"]["refused_event_id"]: e for e in await stream_events(nc, STEP_REFUSED)}
    assert set(refusals) == {early["id"], wrong_seller["id"]}
    assert refusals[early["id"]]["data"]["reason_code"] == "out_of_order"
    assert refusals[wrong_seller["id"]]["data"]["reason_code"] == "seller_mismatch"
    # It also hears of the confirmation and the shipment, from the catalog's records of them.
    told = await settled(notifications, 4, party_id=BUYER)
    recorded = {c["id"] for c in changes.values() if c["data"]["status"] in {"confirmed", "shipped"}}
    assert sorted(r["event_id"] for r in told) == sorted([*(e["id"] for e in refusals.values()), *recorded])
    to_buyer = [subject(m) for m in smtp.messages if "pbj@disdik.id" in str(m["To"])]
    assert sorted(to_buyer) == sorted(
        [
            f"Pembayaran untuk pesanan {order_id} ditolak",
            f"Pembayaran untuk pesanan {order_id} ditolak",
            f"Pesanan {order_id} dikonfirmasi penjual",
            f"Pesanan {order_id} telah dikirim",
        ]
    )
    by_cause = {r["event_id"]: r for r in rows}
    paid_change = next(c for c in changes.values() if c["data"]["status"] == "paid")
    assert by_cause[paid_change["id"]]["status"] == "delivered"


async def _status_is(catalog: httpx.AsyncClient, order_id: str, status: str) -> bool:
    return bool((await catalog.get(f"/orders/{order_id}")).json()["status"] == status)


async def _letters(nc: nats.aio.client.Client, count: int) -> bool:
    return len(await dead_letters(nc)) == count
