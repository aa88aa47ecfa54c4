"""The console's pure parts: the word catalogue, cookies, redirects, the preview's query, the CSP."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from kumkm_console import i18n
from kumkm_console.api import preview_params
from kumkm_console.app import build, content_security_policy
from kumkm_console.sessions import PendingSignIn, Signer
from kumkm_console.settings import ConsoleSettings
from kumkm_console.web import money, percent, safe_next

pytestmark = pytest.mark.unit

TEMPLATES = Path(i18n.__file__).parent / "templates"


def test_every_word_a_template_uses_is_in_both_languages() -> None:
    used: set[str] = set()
    for template in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"""t\(\s*["']([a-z_]+\.[a-z_0-9]+|[a-z]+)["']\s*\)""", template.read_text()))
    assert used, "no t('...') found in the templates"
    for language in i18n.LANGUAGES:
        missing = sorted(used - set(i18n.MESSAGES[language]))
        assert not missing, f"{language} lacks {missing}"
    assert set(i18n.MESSAGES["id"]) == set(i18n.MESSAGES["en"])


def test_indonesian_is_the_default_and_english_the_switch() -> None:
    assert i18n.choose(None) == "id"
    assert i18n.choose("fr") == "id"
    assert i18n.choose("en") == "en"
    assert i18n.translate("en", "signin.button") == "Sign in"
    assert i18n.translate("id", "signin.button") == "Masuk"


def test_a_signed_cookie_cannot_be_altered() -> None:
    signer = Signer("secret")
    signed = signer.sign("abc")
    assert signer.unsign(signed) == "abc"
    assert signer.unsign(signed[:-1] + ("A" if signed[-1] != "A" else "B")) is None
    assert signer.unsign("abd." + signed.split(".")[1]) is None
    assert Signer("other").unsign(signed) is None
    assert signer.unsign(None) is None
    assert signer.unsign("no-signature") is None


def test_pkce_challenge_is_s256_of_the_verifier() -> None:
    # RFC 7636, appendix B.
    pending = PendingSignIn("s", "n", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "/")
    assert pending.challenge == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/loans", "/loans"),
        ("/loans?x=1", "/loans?x=1"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
        ("/ /evil.example", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_after_sign_in_only_a_path_on_this_site(given: str | None, expected: str) -> None:
    assert safe_next(given) == expected


def test_money_and_percent_read_the_indonesian_way() -> None:
    assert money("12000000000.00") == "Rp12.000.000.000"
    assert money("1919617105.50", "en") == "Rp1,919,617,105.50"
    assert money(None) == "-"
    assert percent("0.6500") == "65.0%"


def test_the_preview_asks_for_the_requests_own_proposal() -> None:
    row = {
        "reschedule_from": "2020-05-15",
        "requested_on": "2020-04-20",
        "reason": "covid19_direct",
        "proposal": [
            {"scheme": "grace_period", "months": 6, "on": "principal"},
            {"scheme": "tenor_extension", "extra_months": 12},
            {"scheme": "rate_reduction", "new_annual_rate": "0.03"},
            {"scheme": "arrears_capitalization"},
        ],
    }
    assert preview_params(row) == {
        "reschedule_from": "2020-05-15",
        "requested_on": "2020-04-20",
        "reason": "covid19_direct",
        "grace_months": 6,
        "grace_on": "principal",
        "extra_months": 12,
        "new_annual_rate": "0.03",
        "capitalise_arrears": "true",
    }


def test_the_policy_allows_no_inline_script_and_forms_only_here_and_at_the_issuer() -> None:
    policy = content_security_policy("http://127.0.0.1:8099/realms/kumkm")
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "form-action 'self' http://127.0.0.1:8099" in policy


async def test_pages_need_sign_in_and_static_files_are_served_with_the_policy() -> None:
    app = build(ConsoleSettings(issuer="http://127.0.0.1:1"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as client:
        await _check_pages(client)


async def _check_pages(client: httpx.AsyncClient) -> None:
    page = await client.get("/loans")
    assert page.status_code == 303
    assert page.headers["location"] == "/auth/login?next=%2Floans"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    home = await client.get("/")
    assert home.status_code == 200
    assert '<html lang="id">' in home.text
    assert 'href="#main"' in home.text
    english = await client.get("/", headers={"Cookie": "kumkm_lang=en"})
    assert '<html lang="en">' in english.text
    assert "Sign in" in english.text
    for asset in (
        "/static/vendor/htmx.org/dist/htmx.min.js",
        "/static/vendor/chart.js/dist/chart.umd.min.js",
    ):
        assert (await client.get(asset)).status_code == 200, asset
    assert (await client.get("/static/console.css")).status_code == 200
    # A form posted without the session's CSRF token changes nothing.
    posted = await client.post("/loans/requests/RR-1/decision", data={"decision": "approve"})
    assert posted.status_code == 303
