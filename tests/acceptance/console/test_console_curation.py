"""A curator approves a product through the console, in a real browser."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio
from playwright.async_api import expect

from kumkm_catalog.app import build
from kumkm_catalog.settings import Band, CatalogSettings
from kumkm_shared.clock import FixedClock
from kumkm_shared.messaging.topology import consumer
from kumkm_shared.testing.harness import ServiceHarness
from tests.acceptance.console.support import console, serve, sign_in
from tests.integration.catalog import samples

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from playwright.async_api import Browser

pytestmark = pytest.mark.acceptance


@pytest_asyncio.fixture
async def catalog(nats_url: str, database_url: str) -> AsyncIterator[ServiceHarness]:
    settings = CatalogSettings(
        price_bands={"furniture": Band(low=Decimal(50_000), high=Decimal(25_000_000))},
        tick_interval_seconds=3600,
    )
    definition = build(settings=settings, clock=FixedClock(datetime(2024, 9, 12, 3, 0, tzinfo=UTC)))
    definition.consumer_decls = {"catalog": replace(consumer("catalog"), max_deliver=3)}
    async with ServiceHarness.start(definition, nats_url, database_url, consumer_batch=64) as harness:
        yield harness


async def test_a_curator_approves_a_product(catalog: ServiceHarness, browser: Browser) -> None:
    submitted = await catalog.http.post("/products", json=samples.product("PRD-WEB-1"))
    assert submitted.status_code == 201, submitted.text
    assert submitted.json()["status"] == "pending_curation"
    async with serve(catalog.runtime.http) as catalog_url, console({"catalog": catalog_url}) as base:
        page = await sign_in(browser, base, "it-curator-bekasi", "/curation")
        await expect(page.get_by_test_id("curation-queue")).to_contain_text("PRD-WEB-1")
        await page.get_by_role("link", name="Kursi siswa kayu jati").click()
        await expect(page.get_by_role("heading", name="Hasil pra-pemeriksaan")).to_be_visible()
        for item in ("NIB valid", "TKDN memenuhi minimum", "Harga dalam rentang wajar", "Dokumen lengkap"):
            await page.get_by_label(item).check()
        await page.get_by_label("Setujui").check()
        await page.get_by_label("Tingkat katalog").select_option("local")
        await page.get_by_label("Catatan").fill("Lengkap dan sesuai")
        await page.get_by_role("button", name="Kirim keputusan").click()
        await expect(page.get_by_test_id("status")).to_have_attribute("data-status", "listed")
        await page.context.close()
    await catalog.settle()
    curated = [e for e in await catalog.events("kumkm.catalog.>") if e["type"].endswith("product.curated.v1")]
    mine = [e["data"] for e in curated if e["data"]["product_id"] == "PRD-WEB-1"]
    assert [(d["decision"], d["curator"], d["tier"]) for d in mine] == [
        ("approved", "it-curator-bekasi", "local")
    ]
    assert all(item["passed"] for item in mine[0]["checklist"])
    assert mine[0]["notes"] == "Lengkap dan sesuai"
