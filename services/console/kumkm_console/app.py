"""``build()``: the console's FastAPI app: pages, sign-in, static files (htmx and Chart.js from npm, served
here: no CDN) and the security headers (a Content-Security-Policy without inline scripts)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from kumkm_console.api import router
from kumkm_console.clients import ApiError, Services, Unavailable
from kumkm_console.sessions import SessionStore, Signer
from kumkm_console.settings import ConsoleSettings
from kumkm_console.signin import SignInFlow
from kumkm_console.web import Console, CsrfRefused, SignInRequired, render

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

PACKAGE = Path(__file__).resolve().parent
STATIC = PACKAGE / "static"
NODE_MODULES = PACKAGE.parent / "node_modules"
# What the console serves from its npm packages (installed by ``make install``: ``npm ci``).
VENDORED = {
    "htmx.min.js": NODE_MODULES / "htmx.org" / "dist" / "htmx.min.js",
    "chart.umd.min.js": NODE_MODULES / "chart.js" / "dist" / "chart.umd.min.js",
}


class AssetsMissingError(RuntimeError):
    """The npm packages are not installed: the message names the install step."""


def check_assets() -> None:
    missing = [str(path) for path in VENDORED.values() if not path.is_file()]
    if missing:
        raise AssetsMissingError(
            f"the console's npm packages are missing ({', '.join(missing)}); run `make install` "
            f"(it runs `npm ci --prefix {NODE_MODULES.parent}`)"
        )


def content_security_policy(issuer: str) -> str:
    issuer_origin = "{0.scheme}://{0.netloc}".format(urlsplit(issuer))
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            # The sign-out form's redirect goes on to the provider's end-session page.
            f"form-action 'self' {issuer_origin}",
        ]
    )


def build(settings: ConsoleSettings | None = None) -> FastAPI:
    settings = settings or ConsoleSettings()
    check_assets()
    services = Services(settings.service_urls(), settings.api_timeout)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await services.aclose()

    app = FastAPI(title="KUMKM console", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.console = Console(
        settings=settings,
        store=SessionStore(settings.session_idle_seconds),
        signer=Signer(settings.session_secret.get_secret_value()),
        flow=SignInFlow(settings),
        services=services,
    )
    app.include_router(router)
    app.mount("/static/vendor", StaticFiles(directory=NODE_MODULES), name="vendor")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    policy = content_security_policy(settings.issuer)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = policy
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        if not request.url.path.startswith("/static"):
            response.headers["Cache-Control"] = "no-store"
        return response

    app.add_api_route("/healthz", healthz, include_in_schema=False)
    app.add_exception_handler(SignInRequired, sign_in_first)  # type: ignore[arg-type]
    app.add_exception_handler(CsrfRefused, csrf_refused)
    app.add_exception_handler(ApiError, api_error)  # type: ignore[arg-type]
    app.add_exception_handler(Unavailable, unavailable)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
    return app


async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def sign_in_first(request: Request, exc: SignInRequired) -> Response:
    if request.method != "GET":
        return RedirectResponse("/", status_code=303)
    return RedirectResponse(f"/auth/login?next={quote(exc.next_path, safe='')}", status_code=303)


async def csrf_refused(request: Request, _: Exception) -> Response:
    return render(request, "error.html", status_code=403, title_key="err.refused", lead_key="err.csrf")


async def api_error(request: Request, exc: ApiError) -> Response:
    """403 (and 401) from a service: the "not allowed" page; 404 "not found"; any other refusal."""
    if exc.status in {401, 403}:
        return render(
            request,
            "error.html",
            status_code=403,
            title_key="err.forbidden",
            lead_key="err.forbidden_lead",
            detail=exc.message,
        )
    if exc.status == 404:  # noqa: PLR2004
        return render(request, "error.html", status_code=404, title_key="err.not_found", detail=exc.message)
    return render(request, "error.html", status_code=400, title_key="err.refused", detail=exc.message)


async def unavailable(request: Request, exc: Unavailable) -> Response:
    return render(
        request,
        "error.html",
        status_code=502,
        title_key="err.unavailable",
        lead_key="err.unavailable_lead",
        detail=exc.service,
    )


async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
    """A page's query or path parameter that does not fit: a page naming the field, never JSON."""
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()))
    return render(
        request,
        "error.html",
        status_code=400,
        title_key="err.refused",
        detail=f"{where}: {first.get('msg', '')}",
    )
