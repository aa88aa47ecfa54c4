"""An operator replays a dead letter through the console, in a real browser."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio
from playwright.async_api import expect
from pydantic import SecretStr

from kumkm_loans.app import build
from kumkm_loans.settings import LoansSettings
from kumkm_notifications.app import build as build_notifications
from kumkm_notifications.settings import NotificationsSettings
from kumkm_shared.testing import wait_for
from kumkm_shared.testing.harness import ServiceHarness
from tests.acceptance.console.support import console, console_app, serve, sign_in
from tests.integration.loans.conftest import Loans
from tests.support.notifications import KRANGGAN_ID, sample

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from playwright.async_api import Browser

pytestmark = pytest.mark.acceptance

DISBURSED = "kumkm.loans.loan.disbursed.v1"


@pytest_asyncio.fixture
async def loans(nats_url: str, database_url: str) -> AsyncIterator[Loans]:
    definition = build(settings=LoansSettings(daily_tick=False))
    async with Loans.start(definition, nats_url, database_url, consumer_batch=16) as harness:
        yield harness


async def test_an_operator_replays_a_dead_letter(loans: Loans, browser: Browser) -> None:
    await loans.publish_raw(DISBURSED, b'{"not": "an envelope"}')
    await loans.settle()
    [letter] = await loans.dead_letters()
    assert letter.reason_code == "invalid_envelope"
    async with serve(loans.runtime.http) as loans_url, console({"loans": loans_url}) as base:
        page = await sign_in(browser, base, "it-operator", "/operations/dead-letters")
        table = page.get_by_test_id("dlq-loans")
        await expect(table).to_contain_text("invalid_envelope")
        seq = (await table.locator("tbody th a").first.inner_text()).strip()
        await page.get_by_role("link", name=seq, exact=True).click()
        await expect(page.get_by_text('{"not": "an envelope"}')).to_be_visible()
        await page.get_by_role("button", name="Putar ulang").click()
        await expect(page.get_by_test_id("done")).to_contain_text(f"loans:{seq}")
        await page.context.close()
    # The original bytes are back on their subject, marked as the replay of that dead letter.
    replayed = await loans.nc.jetstream().get_last_msg("KUMKM_LOANS", DISBURSED)
    assert replayed.data == b'{"not": "an envelope"}'
    assert (replayed.headers or {}).get("Kumkm-Replay-Of") == seq
    # Still not an envelope: the service dead-letters the replayed copy again.
    await wait_for(lambda: _count(loans, 2), timeout=15)


async def _count(loans: Loans, expected: int) -> bool:
    return len(await loans.dead_letters()) == expected


async def test_someone_without_the_operator_role_is_not_allowed(loans: Loans, browser: Browser) -> None:
    async with serve(loans.runtime.http) as loans_url, console({"loans": loans_url}) as base:
        page = await sign_in(browser, base, "it-officer-2", "/operations/dead-letters")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Tidak diizinkan")
        # Signing out ends the console's session and goes on to the provider's own sign-out.
        await page.get_by_role("button", name="Keluar").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Sign out")
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Signed out")
        await page.goto(f"{base}/loans")
        await expect(page.get_by_label("Username")).to_be_visible()
        await page.context.close()


async def test_an_expired_access_token_is_refreshed_and_a_failed_refresh_signs_in_again(
    loans: Loans, browser: Browser
) -> None:
    async with serve(loans.runtime.http) as loans_url, console_app({"loans": loans_url}) as (base, app):
        page = await sign_in(browser, base, "it-operator", "/operations/dead-letters")
        [session] = app.state.console.store._sessions.values()
        before = session.access_token.get_secret_value()
        assert session.refresh_token is not None
        session.expires_at = time.time()  # as if it had expired: the next page refreshes it first
        await page.goto(f"{base}/operations/dead-letters")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Surat mati (DLQ)")
        assert session.access_token.get_secret_value() != before
        assert session.expires_at > time.time() + 60
        # A refresh the provider refuses ends the session: the person is sent to sign in again (and the
        # provider, which still knows them, signs them straight back in).
        session.expires_at = time.time()
        session.refresh_token = SecretStr("not-a-refresh-token")
        await page.goto(f"{base}/operations/dead-letters")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Surat mati (DLQ)")
        [renewed] = app.state.console.store._sessions.values()
        assert renewed.sid != session.sid
        await page.context.close()


async def test_an_operator_routes_a_notification_again_from_the_activity_page(
    nats_url: str, database_url: str, browser: Browser
) -> None:
    definition = build_notifications(settings=NotificationsSettings())
    definition.workers = []  # nothing is sent anywhere: the page records the operator's decision only
    async with ServiceHarness.start(definition, nats_url, database_url, consumer_batch=16) as harness:
        await harness.publish(sample("kumkm.loans.installment.overdue.v1"))
        await harness.settle()
        [waiting] = (await harness.http.get("/notifications", params={"status": "no_contact"})).json()
        contact = {
            "name": "Koperasi Pedagang Pasar Kranggan",
            "party_kind": "cooperative",
            "channels": ["inbox"],
        }
        assert (await harness.http.put(f"/contacts/{KRANGGAN_ID}", json=contact)).status_code == 200
        async with serve(harness.runtime.http) as url, console({"notifications": url}) as base:
            page = await sign_in(browser, base, "it-operator", "/operations/notifications?status=no_contact")
            await expect(page.get_by_test_id("notifications")).to_contain_text("tanpa kontak")
            await page.get_by_role("button", name=f"Kirim ulang {waiting['id']}").click()
            await expect(page.get_by_test_id("done")).to_contain_text(str(waiting["id"]))
            await page.context.close()
        feed = (await harness.http.get("/notifications", params={"event_id": waiting["event_id"]})).json()
        assert {n["id"]: n["status"] for n in feed}[waiting["id"]] == "rerouted"
