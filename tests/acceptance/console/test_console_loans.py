"""Officers and supervisors decide restructuring requests through the console, in a real browser."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio
from playwright.async_api import expect

from kumkm_loans.app import build
from kumkm_loans.settings import LoansSettings
from tests.acceptance.console.support import PHONE, console, serve, sign_in
from tests.integration.loans.conftest import Loans, restructuring_requested
from tests.support.events import loan_disbursed

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from playwright.async_api import Browser

pytestmark = pytest.mark.acceptance


@pytest_asyncio.fixture
async def loans(nats_url: str, database_url: str) -> AsyncIterator[Loans]:
    # Referred above Rp1bn; a single officer decides up to Rp5bn, above that a supervisor checks.
    settings = LoansSettings(
        daily_tick=False,
        auto_approval_limit=Decimal(1_000_000_000),
        second_approval_above=Decimal(5_000_000_000),
    )
    async with Loans.start(build(settings=settings), nats_url, database_url, consumer_batch=16) as harness:
        yield harness


async def referred(loans: Loans, loan_id: str, request_id: str, principal: str) -> None:
    await loans.publish(loan_disbursed(loan_id, principal=principal))
    await loans.settle()
    body = restructuring_requested(loan_id, request_id=request_id)["data"]
    created = await loans.http.post("/restructurings", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "referred"


async def decide_on_page(browser: Browser, base: str, username: str, request_id: str, reason: str) -> None:
    page = await sign_in(browser, base, username, "/loans", viewport=PHONE)
    await page.get_by_role("link", name=request_id).click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text(request_id)
    # The request page: the loan, its arrears, the policy's reasons and both schedules side by side.
    await expect(page.get_by_role("table", name="Jadwal sebelum")).to_be_visible()
    await expect(page.get_by_role("table", name="Jadwal sesudah (pratinjau)")).to_be_visible()
    await expect(page.get_by_text("above_auto_approval_limit").first).to_be_visible()
    await page.get_by_label("Setujui").check()
    await page.get_by_label("Alasan keputusan").fill(reason)
    await page.get_by_role("button", name="Kirim keputusan").click()
    await expect(page.get_by_test_id("done")).to_be_visible()
    await page.context.close()


async def test_an_officer_approves_a_referred_request_and_the_approval_event_appears(
    loans: Loans, browser: Browser
) -> None:
    await referred(loans, "LN-WEB-1", "RR-WEB-1", "2500000000.00")
    async with serve(loans.runtime.http) as loans_url, console({"loans": loans_url}) as base:
        page = await sign_in(browser, base, "it-officer-2", "/loans")
        await expect(page.get_by_test_id("referred")).to_contain_text("RR-WEB-1")
        await page.context.close()
        await decide_on_page(browser, base, "it-officer-2", "RR-WEB-1", "Dampak COVID terverifikasi")
    await loans.settle()
    [approved] = await loans.events("restructuring.approved.v1")
    assert approved["data"]["request_id"] == "RR-WEB-1"
    assert approved["data"]["decided_by"] == "it-officer-2"
    assert approved["data"]["note"] == "Dampak COVID terverifikasi"


async def test_a_supervisor_completes_a_two_person_approval(loans: Loans, browser: Browser) -> None:
    await referred(loans, "LN-WEB-2", "RR-WEB-2", "12000000000.00")
    async with serve(loans.runtime.http) as loans_url, console({"loans": loans_url}) as base:
        await decide_on_page(browser, base, "it-officer-2", "RR-WEB-2", "Pembuat: dampak terverifikasi")
        await loans.settle()
        assert await loans.events("restructuring.approved.v1") == []
        page = await sign_in(browser, base, "it-supervisor-2", "/loans")
        await expect(page.get_by_test_id("awaiting")).to_contain_text("RR-WEB-2")
        await page.get_by_role("link", name="RR-WEB-2").click()
        await expect(page.get_by_role("heading", name="Persetujuan pertama")).to_be_visible()
        await expect(page.get_by_text(re.compile("it-officer-2"))).to_be_visible()
        await page.get_by_label("Setujui").check()
        await page.get_by_label("Alasan keputusan").fill("Pemeriksa: disetujui")
        await page.get_by_role("button", name="Kirim keputusan").click()
        await expect(page.get_by_test_id("status")).to_have_attribute("data-status", "approved")
        await page.context.close()
    await loans.settle()
    [approved] = await loans.events("restructuring.approved.v1")
    assert approved["data"]["decided_by"] == "it-supervisor-2"
    assert approved["data"]["first_approved_by"] == "it-officer-2"
