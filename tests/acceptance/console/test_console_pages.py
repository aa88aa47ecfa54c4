"""Every console page, signed in through the real provider, in Debian's chromium: each renders with no
script or policy error, fits a 375 px wide phone without sideways scrolling, and is saved as a PNG.

``make screenshots`` runs this test with ``KUMKM_SCREENSHOTS_DIR=docs/screenshots``; otherwise the PNGs
go to the test's temporary folder.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.async_api import expect

from kumkm_catalog.app import build as build_catalog
from kumkm_loans.app import build as build_loans
from kumkm_loans.settings import LoansSettings
from kumkm_notifications.app import build as build_notifications
from kumkm_shared.testing.harness import ServiceHarness
from tests.acceptance.console.support import PHONE, console, serve, sign_in
from tests.acceptance.console.test_console_monitoring import MONTH, registry_events
from tests.integration.catalog import samples
from tests.integration.loans.conftest import Loans, restructuring_requested
from tests.support.events import loan_disbursed

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from playwright.async_api import Browser, Page

pytestmark = pytest.mark.acceptance

DESKTOP = {"width": 1280, "height": 900}


@contextlib.asynccontextmanager
async def running(nats_url: str, database_url: str) -> AsyncIterator[dict[str, Any]]:
    """Loans, catalog and notifications on real ports, with a few requests, a product and a dead letter."""
    limits = LoansSettings(
        daily_tick=False,
        auto_approval_limit=Decimal(1_000_000_000),
        second_approval_above=Decimal(5_000_000_000),
    )
    async with contextlib.AsyncExitStack() as stack:
        enter = stack.enter_async_context
        loans = await stack.enter_async_context(
            Loans.start(build_loans(settings=limits), nats_url, database_url)
        )
        catalog = await stack.enter_async_context(
            ServiceHarness.start(build_catalog(), nats_url, database_url)
        )
        notifications = await stack.enter_async_context(
            ServiceHarness.start(build_notifications(), nats_url, database_url)
        )
        for loan_id, principal in (("LN-SHOT-1", "2500000000.00"), ("LN-SHOT-2", "12000000000.00")):
            await loans.publish(loan_disbursed(loan_id, principal=principal))
        await loans.settle()
        for loan_id, request_id in (("LN-SHOT-1", "RR-SHOT-1"), ("LN-SHOT-2", "RR-SHOT-2")):
            body = restructuring_requested(loan_id, request_id=request_id)["data"]
            assert (await loans.http.post("/restructurings", json=body)).status_code == 201
        first = {"decision": "approve", "reason": "Dampak COVID terverifikasi"}
        made = await loans.client("it-officer-2").post("/restructurings/RR-SHOT-2/decision", json=first)
        assert made.json()["status"] == "awaiting_second_approval", made.text
        await loans.publish_raw("kumkm.loans.loan.disbursed.v1", b'{"not": "an envelope"}')
        submitted = await catalog.http.post("/products", json=samples.product("PRD-SHOT-1"))
        assert submitted.status_code == 201, submitted.text
        await loans.settle()
        await catalog.settle()
        urls = {
            "loans": await enter(serve(loans.runtime.http)),
            "catalog": await enter(serve(catalog.runtime.http)),
            "notifications": await enter(serve(notifications.runtime.http)),
        }
        if importlib.util.find_spec("kumkm_monitoring") is not None:  # H1's service, once merged
            from kumkm_monitoring.app import build as build_monitoring

            monitoring = await enter(ServiceHarness.start(build_monitoring(), nats_url, database_url))
            for event in registry_events():
                await monitoring.publish(event)
            await monitoring.settle()
            urls["monitoring"] = await enter(serve(monitoring.runtime.http))
        base = await stack.enter_async_context(console(urls))
        yield {"base": base, "loans": loans}


def _out_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("KUMKM_SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def _shoot(page: Page, out: Path, name: str, problems: list[str]) -> None:
    await page.wait_for_load_state("networkidle")
    width = await page.evaluate("document.documentElement.scrollWidth")
    viewport = page.viewport_size or DESKTOP
    if width > viewport["width"]:
        problems.append(f"{name}: {width} px wide in a {viewport['width']} px window")
    await page.screenshot(path=str(out / f"{name}.png"), full_page=True)


def _watch(page: Page, problems: list[str]) -> None:
    def on_console(message: Any) -> None:
        # A page's own status (403 "not allowed", 502 "unavailable") is meant; its assets are checked below.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(f"{page.url}: {message.text}")

    def on_response(response: Any) -> None:
        if response.request.resource_type != "document" and response.status >= 400:
            problems.append(f"{page.url}: {response.url} answered {response.status}")

    page.on("console", on_console)
    page.on("response", on_response)
    page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))


async def test_every_page_renders_and_is_saved(
    nats_url: str, database_url: str, browser: Browser, tmp_path: Path
) -> None:
    out = _out_dir(tmp_path)
    problems: list[str] = []
    async with running(nats_url, database_url) as system:
        base = system["base"]
        anonymous = await (await browser.new_context(viewport=DESKTOP)).new_page()
        _watch(anonymous, problems)
        await anonymous.goto(base)
        await _shoot(anonymous, out, "signin", problems)
        await anonymous.context.close()

        letter = (await system["loans"].dead_letters())[0]
        seq = (await system["loans"].client("it-operator").get("/dlq")).json()["items"][0]["id"]
        assert letter.reason_code == "invalid_envelope"
        pages = [
            ("dashboard", f"/dashboard?month={MONTH}"),
            ("outreach", "/outreach"),
            ("loans-queue", "/loans"),
            ("loans-request", "/loans/requests/RR-SHOT-1"),
            ("loans-second-approval", "/loans/requests/RR-SHOT-2"),
            ("curation-queue", "/curation"),
            ("curation-product", "/curation/products/PRD-SHOT-1"),
            ("dead-letters", "/operations/dead-letters"),
            ("dead-letter", f"/operations/dead-letters/loans/{seq}"),
            ("notifications", "/operations/notifications?status="),
        ]
        page = await sign_in(browser, base, "it-all", "/loans", viewport=DESKTOP)
        _watch(page, problems)
        for name, path in pages:
            await page.goto(f"{base}{path}")
            await expect(page.get_by_role("main")).to_be_visible()
            await _shoot(page, out, name, problems)
        await page.goto(f"{base}/lang/en?next=/loans/requests/RR-SHOT-1")
        await expect(page.get_by_role("heading", level=1)).to_contain_text("Restructuring request")
        await _shoot(page, out, "loans-request-en", problems)
        await page.context.close()

        phone = await sign_in(browser, base, "it-all", "/loans", viewport=PHONE)
        _watch(phone, problems)
        for name, path in [
            ("phone-loans-request", "/loans/requests/RR-SHOT-1"),
            ("phone-dashboard", f"/dashboard?month={MONTH}"),
        ]:
            await phone.goto(f"{base}{path}")
            await _shoot(phone, out, name, problems)
        await phone.context.close()

        nobody = await sign_in(browser, base, "it-nobody", "/loans", viewport=DESKTOP)
        await expect(nobody.get_by_role("heading", level=1)).to_have_text("Tidak diizinkan")
        await _shoot(nobody, out, "not-allowed", problems)
        await nobody.context.close()
    assert not problems, "\n".join(problems)
