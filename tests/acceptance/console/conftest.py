from __future__ import annotations

from typing import TYPE_CHECKING

import pytest_asyncio

from tests.acceptance.console.support import chromium_path

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from playwright.async_api import Browser


@pytest_asyncio.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Debian's chromium, headless, for the whole session (each test signs in in its own context)."""
    from playwright.async_api import async_playwright

    executable = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(executable), headless=True)
        try:
            yield launched
        finally:
            await launched.close()
