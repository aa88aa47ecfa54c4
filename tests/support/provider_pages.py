"""The embedded provider's sign-in pages, driven as a browser would: find a form, fill it in, submit it."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx


class Forms(HTMLParser):
    """The forms of a page: id (or action) -> (action, hidden and named input values)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: dict[str, tuple[str, dict[str, str]]] = {}
        self._current: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._current = found.get("id") or found.get("action", "")
            self.forms[self._current] = (found.get("action", ""), {})
        elif tag == "input" and self._current is not None and "name" in found:
            self.forms[self._current][1][found["name"]] = found.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


async def submit(
    http: httpx.AsyncClient, page: httpx.Response, form_id: str, **values: str
) -> httpx.Response:
    forms = Forms(page.text).forms
    assert form_id in forms, f"no form {form_id!r} on {page.url}: {sorted(forms)}"
    action, fields = forms[form_id]
    return await http.post(urljoin(str(page.url), action), data={**fields, **values})


async def sign_in_on_device_page(verification_uri: str, user_code: str, username: str, password: str) -> str:
    """Enter the user code, confirm, and sign in as `username`; the final page's text."""
    async with httpx.AsyncClient(follow_redirects=True) as browser:
        page = await browser.get(verification_uri)
        assert page.status_code == 200, page.text
        page = await submit(browser, page, "op.deviceInputForm", user_code=user_code)
        page = await submit(browser, page, "op.deviceConfirmForm")
        page = await submit(browser, page, "login", username=username, password=password)
        assert page.status_code == 200, page.text
        return page.text
