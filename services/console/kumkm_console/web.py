"""What every page needs: the request's session, language and CSRF check, and rendering a template.

A page that needs a signed-in person raises ``SignInRequired`` when there is none (the app answers with a
redirect to the sign-in); an API's 403 becomes the "not allowed" page, its 404 "not found", a service that
does not answer "unavailable" (``app.py`` registers those handlers).
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape

from kumkm_console.i18n import LANG_COOKIE, choose, label, translate
from kumkm_console.sessions import SESSION_COOKIE, Session
from kumkm_console.signin import SignInError
from kumkm_shared.money import format_rupiah

if TYPE_CHECKING:
    from fastapi import Request

    from kumkm_console.clients import Services
    from kumkm_console.sessions import SessionStore, Signer
    from kumkm_console.settings import ConsoleSettings
    from kumkm_console.signin import SignInFlow

TEMPLATES = Path(__file__).resolve().parent / "templates"
REFRESH_BEFORE = 30.0  # seconds before expiry an access token is refreshed
MONITORING_ROLES = frozenset({"monitoring-viewer", "loans-supervisor", "operator", "auditor"})
LOANS_ROLES = frozenset({"loans-officer", "loans-supervisor"})
CURATOR_ROLES = frozenset({"catalog-curator"})
OPERATOR_ROLES = frozenset({"operator"})


class SignInRequired(Exception):  # noqa: N818 - a redirect, not a crash
    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfRefused(Exception):  # noqa: N818
    pass


def money(value: Any, language: str = "id") -> str:
    """Rupiah by the platform's one formatter (``Rp2.500.000.000`` in Indonesian); never a float."""
    if value in (None, ""):
        return "-"
    try:
        return format_rupiah(Decimal(str(value)), locale="en_US" if language == "en" else "id_ID")
    except (InvalidOperation, ValueError):
        return str(value)


def percent(value: Any) -> str:
    """A share (``0.6500``) as a percentage with one decimal (``65.0%``)."""
    if value in (None, ""):
        return "-"
    try:
        return f"{(Decimal(str(value)) * 100).quantize(Decimal('0.1'), ROUND_HALF_EVEN)}%"
    except InvalidOperation:
        return str(value)


@pass_context
def _money_filter(context: Any, value: Any) -> str:
    return money(value, context.get("lang", "id"))


environment = Environment(
    loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), auto_reload=False
)
environment.filters["money"] = _money_filter
environment.filters["percent"] = percent


@dataclass
class Console:
    """The app's parts, on ``app.state.console``."""

    settings: ConsoleSettings
    store: SessionStore
    signer: Signer
    flow: SignInFlow
    services: Services


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def language(request: Request) -> str:
    return choose(request.cookies.get(LANG_COOKIE))


def current_path(request: Request) -> str:
    path = request.url.path
    return f"{path}?{request.url.query}" if request.url.query else path


def safe_next(value: str | None) -> str:
    """Only a path on this site (no scheme, no host, no ``//``): never an open redirect. Control characters
    and whitespace are refused too: browsers drop tabs and newlines from a URL, so ``/\t/evil`` would
    become ``//evil``."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):  # noqa: PLR2004
        return "/"
    return value


def session_of(request: Request) -> Session | None:
    console = console_of(request)
    return console.store.get(console.signer.unsign(request.cookies.get(SESSION_COOKIE)))


async def signed_in(request: Request) -> Session:
    """The session with an access token good for a while more (refreshed when near its expiry)."""
    console = console_of(request)
    session = session_of(request)
    if session is None:
        raise SignInRequired(current_path(request))
    if session.expires_within(REFRESH_BEFORE):
        if session.refresh_token is None:
            console.store.drop(session.sid)
            raise SignInRequired(current_path(request))
        try:
            renewed = await console.flow.refresh(session.refresh_token)
        except SignInError:
            console.store.drop(session.sid)
            raise SignInRequired(current_path(request)) from None
        session.actor = renewed.actor
        session.access_token = renewed.tokens.access_token
        session.expires_at = renewed.tokens.expires_at
        session.refresh_token = renewed.tokens.refresh_token or session.refresh_token
        session.id_token = renewed.tokens.id_token or session.id_token
        session.regions = renewed.regions
    return session


def token(session: Session) -> str:
    return session.access_token.get_secret_value()


async def form_of(request: Request, session: Session) -> dict[str, list[str]]:
    """The posted form (urlencoded), after checking its CSRF token against the session's."""
    body = (await request.body()).decode("utf-8", errors="replace")
    form = parse_qs(body, keep_blank_values=True, max_num_fields=200)
    sent = (form.get("csrf") or [""])[0]
    if not sent or not hmac.compare_digest(sent, session.csrf):
        raise CsrfRefused
    return form


def first(form: dict[str, list[str]], name: str, default: str = "") -> str:
    values = form.get(name)
    return values[0].strip() if values else default


def render(
    request: Request,
    template: str,
    *,
    session: Session | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    lang = language(request)
    session = session or session_of(request)
    roles = session.actor.roles if session else frozenset()
    html = environment.get_template(template).render(
        request=request,
        lang=lang,
        t=lambda key: translate(lang, key),
        label=lambda prefix, value: label(lang, prefix, value),
        session=session,
        actor=session.actor if session else None,
        csrf=session.csrf if session else "",
        path=current_path(request),
        quoted_path=quote(current_path(request), safe=""),
        can_monitor=bool(roles & MONITORING_ROLES),
        can_loans=bool(roles & LOANS_ROLES),
        can_curate=bool(roles & CURATOR_ROLES),
        can_operate=bool(roles & OPERATOR_ROLES),
        now=time.time(),
        **context,
    )
    return HTMLResponse(html, status_code=status_code)
