"""The console's pages. Every page asks the services' APIs with the signed-in person's token and shows
what they answer; a form posts back here (with its CSRF token), the console calls the service's command
and redirects (post/redirect/get)."""

from __future__ import annotations

import asyncio
import json
import secrets
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from kumkm_console.clients import DLQ_SERVICES, ApiError, Unavailable
from kumkm_console.i18n import LANG_COOKIE, LANGUAGES
from kumkm_console.sessions import SESSION_COOKIE, SIGNIN_COOKIE
from kumkm_console.signin import SignInError
from kumkm_console.web import (
    MONITORING_ROLES,
    console_of,
    first,
    form_of,
    render,
    safe_next,
    session_of,
    signed_in,
    token,
)

if TYPE_CHECKING:
    from kumkm_console.sessions import Session

router = APIRouter()

KINDS = ("cooperative", "umkm")
DEFAULT_REGION = ("Jawa Barat", "Kota Bekasi")
CHECKLIST = ("valid_nib", "tkdn_min", "price_band", "documents")
NOTIFICATION_STATUSES = ("unknown", "failed", "no_contact", "suppressed", "pending", "delivered", "rerouted")


def _redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303)


# -- sign-in ---------------------------------------------------------------------------------------------
@router.get("/auth/login")
async def login(request: Request, next: str | None = None) -> Response:  # noqa: A002 - the query's name
    console = console_of(request)
    pending = console.store.begin_signin(safe_next(next))
    try:
        url = await console.flow.authorization_url(pending)
    except SignInError as error:
        return render(request, "signin.html", status_code=502, error=str(error))
    response = _redirect(url)
    response.set_cookie(
        SIGNIN_COOKIE,
        console.signer.sign(pending.state),
        max_age=600,
        httponly=True,
        samesite="lax",
        secure=console.settings.secure_cookies,
        path="/auth",
    )
    return response


@router.get("/auth/callback")
async def callback(
    request: Request, code: str | None = None, state: str | None = None, error: str | None = None
) -> Response:
    console = console_of(request)
    bound = console.signer.unsign(request.cookies.get(SIGNIN_COOKIE))
    if error or not code or not state or bound is None or not secrets.compare_digest(bound, state):
        return render(request, "signin.html", status_code=400, error=error or "state")
    pending = console.store.finish_signin(state)
    if pending is None:
        return render(request, "signin.html", status_code=400, error="state")
    try:
        signed = await console.flow.exchange(code, pending)
    except SignInError as failure:
        return render(request, "signin.html", status_code=400, error=str(failure))
    tokens = signed.tokens
    session = console.store.create(
        signed.actor,
        tokens.access_token,
        tokens.expires_at,
        tokens.refresh_token,
        tokens.id_token,
        signed.regions,
    )
    response = _redirect(pending.next_path)
    response.delete_cookie(SIGNIN_COOKIE, path="/auth")
    response.set_cookie(
        SESSION_COOKIE,
        console.signer.sign(session.sid),
        httponly=True,
        samesite="lax",
        secure=console.settings.secure_cookies,
        path="/",
    )
    return response


@router.post("/auth/logout")
async def logout(request: Request) -> Response:
    console = console_of(request)
    session = session_of(request)
    if session is None:
        return _redirect("/")
    await form_of(request, session)
    console.store.drop(session.sid)
    try:
        url = await console.flow.logout_url(session.id_token)
    except SignInError:
        url = None
    response = _redirect(url or "/")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/lang/{code}")
async def switch_language(code: str, next: str | None = None) -> Response:  # noqa: A002
    response = _redirect(safe_next(next))
    if code in LANGUAGES:
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, samesite="lax", path="/")
    return response


# -- home and the dashboard ------------------------------------------------------------------------------
@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    session = session_of(request)
    if session is None:
        return render(request, "signin.html")
    if session.actor.roles & MONITORING_ROLES:
        return _redirect("/dashboard")
    return render(request, "home.html", session=session)


def _default_region(session: Session) -> tuple[str, str | None]:
    regions = session.regions
    for region in regions:
        province, _, city = region.partition("/")
        if city:
            return province, city
    for region in regions:
        if region.lower() != "national":
            return region, None
    return DEFAULT_REGION


async def _optional(call: Any) -> tuple[Any, str | None]:
    """A section of a page: its data, or why it is missing (``forbidden``, ``unavailable``, a message)."""
    try:
        return await call, None
    except ApiError as error:
        return None, "forbidden" if error.status == 403 else error.message  # noqa: PLR2004
    except Unavailable:
        return None, "unavailable"


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard(
    request: Request,
    month: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$")] = None,
    kind: Annotated[str, Query(pattern="^(cooperative|umkm)$")] = "cooperative",
    province: Annotated[str | None, Query(max_length=100)] = None,
    city: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    session = await signed_in(request)
    console = console_of(request)
    if not province:
        province, city = _default_region(session)
    region = {"province": province, "city": city or None}
    bearer = token(session)
    api = console.services
    level = "district" if city else "city"
    recovery = await api.get(
        "monitoring", "/recovery", bearer, {"month": month, "level": level, "kind": kind, **region}
    )
    (trend, trend_error), (pipeline, pipeline_error), (procurement, procurement_error) = await asyncio.gather(
        _optional(
            api.get(
                "monitoring",
                "/recovery/trend",
                bearer,
                {"kind": kind, "months": 12, "until": recovery.get("month", month), **region},
            )
        ),
        _optional(api.get("monitoring", "/restructuring", bearer, region)),
        _optional(api.get("monitoring", "/procurement", bearer, region)),
    )
    chart = None
    if trend:
        chart = {
            "labels": [p["month"] for p in trend.get("points", [])],
            "share": [_percent_number(p.get("share")) for p in trend.get("points", [])],
            "target": _percent_number(trend.get("target_share")),
        }
    return render(
        request,
        "dashboard.html",
        session=session,
        recovery=recovery,
        level=level,
        kind=kind,
        kinds=KINDS,
        region=region,
        month=recovery.get("month", month),
        trend=trend,
        trend_error=trend_error,
        chart_json=json.dumps(chart) if chart else None,
        pipeline=pipeline,
        pipeline_error=pipeline_error,
        procurement=procurement,
        procurement_error=procurement_error,
    )


def _percent_number(share: Any) -> float | None:
    """A share (a decimal string) as a percentage for the chart; ``None`` (no population) stays a gap."""
    if share in (None, ""):
        return None
    return float(Decimal(str(share)) * 100)


def _outreach_filters(
    province: str | None, city: str | None, district: str | None, kind: str | None
) -> dict[str, Any]:
    return {"province": province, "city": city, "district": district, "kind": kind}


@router.get("/outreach", response_class=HTMLResponse)
async def outreach(
    request: Request,
    province: Annotated[str | None, Query(max_length=100)] = None,
    city: Annotated[str | None, Query(max_length=100)] = None,
    district: Annotated[str | None, Query(max_length=100)] = None,
    kind: Annotated[str | None, Query(pattern="^(cooperative|umkm)$")] = None,
    after: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    """The outreach list; with ``HX-Request`` (htmx's "load more") only the next rows."""
    session = await signed_in(request)
    if not province:
        province, city = _default_region(session)
    filters = _outreach_filters(province, city, district, kind)
    page = await console_of(request).services.get(
        "monitoring", "/outreach", token(session), {**filters, "limit": 50, "after": after}
    )
    query = urlencode({k: v for k, v in filters.items() if v})
    template = "outreach_rows.html" if request.headers.get("HX-Request") else "outreach.html"
    return render(request, template, session=session, page=page, filters=filters, query=query)


@router.get("/outreach.csv")
async def outreach_csv(
    request: Request,
    province: Annotated[str | None, Query(max_length=100)] = None,
    city: Annotated[str | None, Query(max_length=100)] = None,
    district: Annotated[str | None, Query(max_length=100)] = None,
    kind: Annotated[str | None, Query(pattern="^(cooperative|umkm)$")] = None,
) -> Response:
    session = await signed_in(request)
    if not province:
        province, city = _default_region(session)
    filters = _outreach_filters(province, city, district, kind)
    chunks = await console_of(request).services.stream("monitoring", "/outreach.csv", token(session), filters)
    return StreamingResponse(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="outreach.csv"'},
    )


# -- loans -----------------------------------------------------------------------------------------------
@router.get("/loans", response_class=HTMLResponse)
async def loans_queue(request: Request) -> Response:
    session = await signed_in(request)
    api, bearer = console_of(request).services, token(session)
    referred, awaiting = await asyncio.gather(
        api.get("loans", "/restructurings", bearer, {"status": "referred", "limit": 200}),
        api.get("loans", "/restructurings", bearer, {"status": "awaiting_second_approval", "limit": 200}),
    )
    return render(
        request, "loans_queue.html", session=session, referred=referred["items"], awaiting=awaiting["items"]
    )


def preview_params(request_row: dict[str, Any]) -> dict[str, Any]:
    """The preview's query for a request's own proposal (one parameter per scheme)."""
    params: dict[str, Any] = {
        "reschedule_from": request_row["reschedule_from"],
        "requested_on": request_row["requested_on"],
        "reason": request_row.get("reason"),
    }
    for scheme in request_row.get("proposal") or []:
        match scheme.get("scheme"):
            case "tenor_extension":
                params["extra_months"] = scheme["extra_months"]
            case "grace_period":
                params["grace_months"] = scheme["months"]
                params["grace_on"] = scheme.get("on")
            case "rate_reduction":
                params["new_annual_rate"] = scheme["new_annual_rate"]
            case "arrears_capitalization":
                params["capitalise_arrears"] = "true"
            case "principal_arrears_reduction":
                params["principal_arrears_reduction"] = scheme["amount"]
            case "interest_arrears_reduction":
                params["interest_arrears_reduction"] = scheme["amount"]
    return params


@router.get("/loans/requests/{request_id}", response_class=HTMLResponse)
async def request_page(
    request: Request, request_id: str, done: str | None = None, failed: str | None = None
) -> Response:
    session = await signed_in(request)
    api, bearer = console_of(request).services, token(session)
    row = await api.get("loans", f"/restructurings/{quote(request_id, safe='')}", bearer)
    loan_path = f"/loans/{quote(row['loan_id'], safe='')}"
    loan, (preview, preview_error) = await asyncio.gather(
        api.get("loans", loan_path, bearer),
        _optional(api.get("loans", f"{loan_path}/restructurings/preview", bearer, preview_params(row))),
    )
    return render(
        request,
        "request.html",
        session=session,
        req=row,
        loan=loan,
        preview=preview,
        preview_error=preview_error,
        done=done,
        failed=failed,
    )


@router.post("/loans/requests/{request_id}/decision")
async def decide(request: Request, request_id: str) -> Response:
    session = await signed_in(request)
    form = await form_of(request, session)
    decision = first(form, "decision")
    reason = first(form, "reason")
    page = f"/loans/requests/{quote(request_id, safe='')}"
    if decision not in {"approve", "reject"} or not reason:
        return _redirect(f"{page}?{urlencode({'failed': 'decision and reason are required'})}")
    try:
        await console_of(request).services.post(
            "loans",
            f"/restructurings/{quote(request_id, safe='')}/decision",
            token(session),
            {"decision": decision, "reason": reason},
        )
    except ApiError as error:
        if error.status in {403, 404}:
            raise
        return _redirect(f"{page}?{urlencode({'failed': error.message})}")
    return _redirect(f"{page}?done={decision}")


# -- curation --------------------------------------------------------------------------------------------
@router.get("/curation", response_class=HTMLResponse)
async def curation_queue(request: Request) -> Response:
    session = await signed_in(request)
    queue = await console_of(request).services.get("catalog", "/curation/queue", token(session))
    return render(request, "curation_queue.html", session=session, items=queue["items"])


@router.get("/curation/products/{product_id}", response_class=HTMLResponse)
async def product_page(
    request: Request, product_id: str, done: str | None = None, failed: str | None = None
) -> Response:
    session = await signed_in(request)
    product = await console_of(request).services.get(
        "catalog", f"/products/{quote(product_id, safe='')}", token(session)
    )
    return render(
        request,
        "product.html",
        session=session,
        product=product,
        checklist=CHECKLIST,
        done=done,
        failed=failed,
    )


@router.post("/curation/products/{product_id}/decision")
async def curate(request: Request, product_id: str) -> Response:
    session = await signed_in(request)
    form = await form_of(request, session)
    page = f"/curation/products/{quote(product_id, safe='')}"
    decision = first(form, "decision")
    body: dict[str, Any] = {
        "decision": decision,
        "notes": first(form, "notes"),
        "checklist": [{"item": item, "passed": first(form, f"check_{item}") == "on"} for item in CHECKLIST],
    }
    revision = first(form, "revision")
    if revision.isdigit():
        body["revision"] = int(revision)
    if decision == "approved":
        body["tier"] = first(form, "tier") or None
        body["listed_price"] = first(form, "listed_price") or None
    try:
        await console_of(request).services.post(
            "catalog", f"/products/{quote(product_id, safe='')}/curation", token(session), body
        )
    except ApiError as error:
        if error.status in {403, 404}:
            raise
        return _redirect(f"{page}?{urlencode({'failed': error.message})}")
    return _redirect(f"{page}?done={quote(decision)}")


# -- operations ------------------------------------------------------------------------------------------
@router.get("/operations/dead-letters", response_class=HTMLResponse)
async def dead_letters(request: Request, done: str | None = None) -> Response:
    session = await signed_in(request)
    api, bearer = console_of(request).services, token(session)
    answers = await asyncio.gather(*(_optional(api.get(s, "/dlq", bearer)) for s in DLQ_SERVICES))
    # Not allowed anywhere it was asked (the services that do not answer cannot say otherwise).
    if "forbidden" in {err for _, err in answers} and all(err for _, err in answers):
        raise ApiError("dlq", 403, {"error": "forbidden"})
    sections = [
        {"service": service, "items": (body or {}).get("items", []), "error": err}
        for service, (body, err) in zip(DLQ_SERVICES, answers, strict=True)
    ]
    return render(request, "dead_letters.html", session=session, sections=sections, done=done)


@router.get("/operations/dead-letters/{service}/{seq}", response_class=HTMLResponse)
async def dead_letter(request: Request, service: str, seq: int) -> Response:
    session = await signed_in(request)
    if service not in DLQ_SERVICES:
        raise ApiError(service, 404, {"error": "not_found"})
    letter = await console_of(request).services.get(service, f"/dlq/{seq}", token(session))
    return render(request, "dead_letter.html", session=session, service=service, letter=letter)


@router.post("/operations/dead-letters/{service}/{seq}/replay")
async def replay(request: Request, service: str, seq: int) -> Response:
    session = await signed_in(request)
    await form_of(request, session)
    if service not in DLQ_SERVICES:
        raise ApiError(service, 404, {"error": "not_found"})
    await console_of(request).services.post(service, f"/dlq/{seq}/replay", token(session))
    return _redirect(f"/operations/dead-letters?done={service}:{seq}")


@router.get("/operations/notifications", response_class=HTMLResponse)
async def notifications(
    request: Request,
    status: Annotated[str | None, Query(pattern="^[a-z_]{0,20}$")] = "unknown",
    done: str | None = None,
) -> Response:
    session = await signed_in(request)
    items = await console_of(request).services.get(
        "notifications", "/notifications", token(session), {"status": status or None, "limit": 200}
    )
    return render(
        request,
        "notifications.html",
        session=session,
        items=items,
        status=status,
        statuses=NOTIFICATION_STATUSES,
        done=done,
    )


@router.post("/operations/notifications/{notification_id}/resend")
async def resend(request: Request, notification_id: str) -> Response:
    session = await signed_in(request)
    form = await form_of(request, session)
    await console_of(request).services.post(
        "notifications", f"/notifications/{quote(notification_id, safe='')}/resend", token(session)
    )
    status = first(form, "status", "unknown")
    return _redirect(f"/operations/notifications?{urlencode({'status': status, 'done': notification_id})}")
