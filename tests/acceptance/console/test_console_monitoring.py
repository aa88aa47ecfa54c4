"""The recovery dashboard in a real browser: a Kota Bekasi viewer sees exactly the share the test's own
registry events imply (computed here, independently of the monitoring service), and a viewer limited to
another region does not see Kota Bekasi at all.

Needs the monitoring service (``kumkm_monitoring``, H1's branch): without it these tests fail, naming it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from playwright.async_api import expect

from kumkm_shared.contracts.parties import ActivityReported, CooperativeRegistered
from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import ServiceHarness
from tests.acceptance.console.support import console, serve, sign_in
from tests.support.events import envelope

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from playwright.async_api import Browser

    from kumkm_shared.contracts.base import EventData

pytestmark = pytest.mark.acceptance

MONTH = "2021-03"
PROVINCE, CITY = "Jawa Barat", "Kota Bekasi"
DISTRICTS = {"Jatisampurna": "32.75.10", "Bekasi Timur": "32.75.01"}


@dataclass(frozen=True)
class Cooperative:
    number: str
    district: str
    registered_on: str
    reports: tuple[tuple[str, bool], ...]  # (as_of, operating), in date order


# Four cooperatives in two kecamatan, with the city's survey reports.
PARTIES = (
    Cooperative("3275100000000001", "Jatisampurna", "2019-01-10", (("2021-02-01", True),)),
    Cooperative(
        "3275100000000002", "Jatisampurna", "2019-05-10", (("2020-11-01", True), ("2021-01-15", False))
    ),
    Cooperative("3275100000000003", "Jatisampurna", "2020-02-01", ()),
    Cooperative("3275010000000004", "Bekasi Timur", "2018-07-01", (("2021-03-20", True),)),
    Cooperative("3275010000000005", "Bekasi Timur", "2021-04-02", (("2021-04-03", True),)),  # after March
)


def month_bounds(month: str) -> tuple[date, date]:
    start = date.fromisoformat(f"{month}-01")
    end = (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    return start, end


def expected_shares(month: str) -> dict[str, tuple[int, int, Decimal]]:
    """Per kecamatan: registered by the month's end, productive at some point in the month (an operating
    report's interval, until the next report, overlaps it), and the share to 4 places."""
    start, end = month_bounds(month)
    figures: dict[str, tuple[int, int, Decimal]] = {}
    for district in DISTRICTS:
        mine = [p for p in PARTIES if p.district == district and date.fromisoformat(p.registered_on) <= end]
        productive = 0
        for party in mine:
            reports = [(date.fromisoformat(d), operating) for d, operating in party.reports]
            for i, (since, operating) in enumerate(reports):
                until = reports[i + 1][0] if i + 1 < len(reports) else date.max
                if operating and since <= end and until > start:
                    productive += 1
                    break
        share = (Decimal(productive) / Decimal(len(mine))).quantize(Decimal("0.0001"), ROUND_HALF_EVEN)
        figures[district] = (len(mine), productive, share)
    return figures


def region(district: str) -> dict[str, Any]:
    return {"province": PROVINCE, "city": CITY, "district": district, "code": DISTRICTS[district]}


def _event(model: type[EventData], data: dict[str, Any]) -> dict[str, Any]:
    """An envelope of the contract's event, its data checked against the contract first."""
    return envelope(model.event_type, model.model_validate(data).model_dump(mode="json"))


def registry_events() -> list[dict[str, Any]]:
    events = []
    for party in PARTIES:
        events.append(
            _event(
                CooperativeRegistered,
                {
                    "cooperative_number": party.number,
                    "name": f"Koperasi Uji {party.number[-4:]}",
                    "cooperative_type": "market_traders",
                    "status": "active",
                    "member_count": 40,
                    "region": region(party.district),
                    "as_of": party.registered_on,
                },
            )
        )
        for as_of, operating in party.reports:
            events.append(
                _event(
                    ActivityReported,
                    {
                        "party_kind": "cooperative",
                        "party_id": party.number,
                        "operating": operating,
                        "revenue_band": "up_to_300m" if operating else "none",
                        "as_of": as_of,
                        "survey": "BEKASI-2021-Q1",
                    },
                )
            )
    return events


@pytest_asyncio.fixture
async def monitoring(nats_url: str, database_url: str) -> AsyncIterator[ServiceHarness]:
    if importlib.util.find_spec("kumkm_monitoring") is None:
        pytest.fail("the monitoring service (kumkm_monitoring, H1's branch h1-monitoring) is not installed")
    from kumkm_monitoring.app import build

    async with ServiceHarness.start(build(), nats_url, database_url) as harness:
        for event in registry_events():
            await harness.publish(event)
        await harness.settle()
        yield harness


async def _rows_ready(harness: ServiceHarness) -> bool:
    answer = await harness.client("it-all").get(
        "/recovery", params={"month": MONTH, "level": "district", "province": PROVINCE, "city": CITY}
    )
    rows = answer.json().get("rows", []) if answer.status_code == 200 else []
    return sum(r["registered"] for r in rows if r["kind"] == "cooperative") >= 4


async def test_a_bekasi_viewer_sees_exactly_the_share_the_events_imply(
    monitoring: ServiceHarness, browser: Browser
) -> None:
    await wait_for(lambda: _rows_ready(monitoring), timeout=15)
    expected = expected_shares(MONTH)
    assert expected == {
        "Jatisampurna": (3, 1, Decimal("0.3333")),
        "Bekasi Timur": (1, 1, Decimal("1.0000")),
    }
    async with serve(monitoring.runtime.http) as url, console({"monitoring": url}) as base:
        page = await sign_in(browser, base, "it-viewer-bekasi", f"/dashboard?month={MONTH}&kind=cooperative")
        table = page.get_by_test_id("recovery")
        await expect(table).to_be_visible()
        for district, (registered, productive, share) in expected.items():
            row = table.locator(f'tr[data-district="{district}"]')
            cells = row.locator("td")
            await expect(cells.nth(0)).to_have_text(str(registered))
            await expect(cells.nth(1)).to_have_text(str(productive))
            assert Decimal(await cells.nth(2).get_attribute("data-share") or "") == share
            await expect(cells.nth(2)).to_have_text(f"{share * 100:.1f}%")
        # The outreach list (this month): the two cooperatives with no operating report now, as CSV too.
        idle = {"3275100000000002", "3275100000000003"}
        await page.get_by_role("link", name="Daftar penjangkauan").first.click()
        for number in idle:
            await expect(page.get_by_role("main")).to_contain_text(number)
        async with page.expect_download() as download_info:
            await page.get_by_role("link", name="Unduh CSV").click()
        download = await download_info.value
        csv_text = Path(await download.path()).read_text(encoding="utf-8")  # noqa: ASYNC240 - a small file
        assert idle <= {line.split(",")[1] for line in csv_text.splitlines()[1:] if line}, csv_text
        await page.context.close()


async def test_a_viewer_of_another_region_does_not_see_kota_bekasi(
    monitoring: ServiceHarness, browser: Browser
) -> None:
    await wait_for(lambda: _rows_ready(monitoring), timeout=15)
    async with serve(monitoring.runtime.http) as url, console({"monitoring": url}) as base:
        page = await sign_in(browser, base, "it-viewer-sby", f"/dashboard?month={MONTH}")
        await expect(page.get_by_role("main")).not_to_contain_text("Jatisampurna")
        await expect(page.get_by_role("main")).not_to_contain_text("Kota Bekasi")
        query = f"/dashboard?month={MONTH}&province=Jawa+Barat&city=Kota+Bekasi"
        await page.goto(f"{base}{query}")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Tidak diizinkan")
        await expect(page.get_by_role("main")).not_to_contain_text("Jatisampurna")
        await page.goto(f"{base}/outreach?province=Jawa+Barat&city=Kota+Bekasi")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Tidak diizinkan")
        await page.context.close()
