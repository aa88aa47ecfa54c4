"""The console's browser tests: real services on real ports, the console on one, Debian's chromium driven by
Playwright, signing in through the embedded provider's own sign-in page."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import uvicorn
from playwright.async_api import TimeoutError as PlaywrightTimeout

from kumkm_console.app import build as build_console
from kumkm_console.settings import ConsoleSettings
from kumkm_shared.servers._process import free_port
from kumkm_shared.testing.identity import identity

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Mapping

    from fastapi import FastAPI
    from playwright.async_api import Browser, Page

CHROMIUM = Path(os.environ.get("KUMKM_CHROMIUM", "/usr/bin/chromium"))
PASSWORD = "kumkm-test"
PHONE = {"width": 375, "height": 812}


def chromium_path() -> Path:
    """Debian's chromium; a missing browser fails the test with the install step (never a skip)."""
    if not CHROMIUM.is_file():
        raise RuntimeError(
            f"no browser at {CHROMIUM}: the console's browser tests drive Debian's chromium; install it with "
            "`apt-get install chromium` (or set KUMKM_CHROMIUM to a chromium binary)"
        )
    return CHROMIUM


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve(app: FastAPI, port: int | None = None) -> AsyncIterator[str]:
    """Serve an ASGI app on a local port in this event loop; yields its base URL."""
    port = port or free_port()
    # log_config=None: uvicorn leaves the logging setup alone (later tests read the log records).
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def console(urls: Mapping[str, str]) -> AsyncIterator[str]:
    """The console on a free port, its API base URLs set to the services given (others point nowhere)."""
    async with console_app(urls) as (url, _):
        yield url


@contextlib.asynccontextmanager
async def console_app(urls: Mapping[str, str]) -> AsyncIterator[tuple[str, FastAPI]]:
    """``console``, with the app itself (to look at its sessions)."""
    port = free_port()
    nowhere = f"http://127.0.0.1:{free_port()}"
    settings = ConsoleSettings(
        host="127.0.0.1",
        port=port,
        issuer=identity().issuer,
        loans_url=urls.get("loans", nowhere),
        catalog_url=urls.get("catalog", nowhere),
        notifications_url=urls.get("notifications", nowhere),
        monitoring_url=urls.get("monitoring", nowhere),
    )
    app = build_console(settings)
    async with serve(app, port) as url:
        yield url, app


async def sign_in(browser: Browser, base: str, username: str, path: str = "/", **context: Any) -> Page:
    """A new browser context, signed in as ``username`` through the provider's page; at ``path``."""
    ctx = await browser.new_context(**context)
    page = await ctx.new_page()
    await page.goto(f"{base}/auth/login?next={quote(path, safe='')}")
    try:
        await page.get_by_label("Username").fill(username, timeout=10_000)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(f"{base}{path}*", timeout=10_000)
    except PlaywrightTimeout:
        text = await page.locator("body").inner_text()
        raise AssertionError(f"sign-in of {username} stuck at {page.url}: {text[:500]}") from None
    return page
