"""The HTTP skeleton every service shares: health, readiness, metrics, structured errors, and the
dependencies routes use are in ``kumkm_shared.service.deps``.

Errors map to HTTP here and nowhere else: a ``Refusal`` answers its ``http_status`` (409, 404, 503), a
``ContractError`` or an invalid request (a body that is not UTF-8 too) 422 naming each field. Handlers never
raise HTTP errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeVar

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

from kumkm_shared.contracts import ContractError
from kumkm_shared.errors import Forbidden, Refusal, Retry

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], data: Any, *, location: Literal["body", "query", "path"] = "body") -> M:
    """Build a contract model from request input; a violation answers 422 naming each field (under
    ``location``), exactly like FastAPI's own validation of the request."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError([{**e, "loc": (location, *e["loc"])} for e in errors]) from None


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or ".".join(str(p) for p in loc)


def _note(request: Request, outcome: str, reason: str) -> None:
    """Tell the request's audit record why it was refused (``signin.SignInMiddleware`` writes it)."""
    draft = getattr(request.state, "audit", None)
    if draft is not None:
        draft.outcome = outcome
        draft.reason = reason[:1000]


def error_body(code: str, message: str, errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"error": code, "message": message, "errors": errors or []}


def create_http_app(
    *,
    title: str,
    description: str,
    readiness: Callable[[], Awaitable[dict[str, bool]]],
) -> FastAPI:
    app = FastAPI(title=title, description=description, version="1.0.0")

    @app.get("/health/live", tags=["health"])
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/ready", tags=["health"])
    async def ready() -> JSONResponse:
        checks = await readiness()
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
        )

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    async def metrics() -> Response:
        # Served at /metrics itself: a mounted app would answer 307 to /metrics/ first.
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(tuple(e["loc"])), "message": str(e["msg"])} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        _note(request, "invalid", detail)
        return JSONResponse(error_body("validation_failed", detail, errors), status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        cause = exc.__cause__
        if isinstance(cause, UnicodeDecodeError):
            # A body that is not UTF-8 is invalid input like malformed JSON: 422 naming the body (FastAPI
            # itself answers 400 {"detail": ...}). Other HTTP errors (unknown route, method) stay FastAPI's.
            message = f"the body is not UTF-8 JSON: {cause.reason} at byte {cause.start}"
            errors = [{"field": "body", "message": message}]
            return JSONResponse(error_body("validation_failed", f"body: {message}", errors), status_code=422)
        return await http_exception_handler(request, exc)

    @app.exception_handler(ContractError)
    async def invalid_event(request: Request, exc: ContractError) -> JSONResponse:
        _note(request, "invalid", str(exc))
        return JSONResponse(
            error_body(exc.code, str(exc), [{"field": e.field, "message": e.message} for e in exc.errors]),
            status_code=422,
        )

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal) -> JSONResponse:
        headers = {"Retry-After": "1"} if isinstance(exc, Retry) else None
        body = error_body(exc.code, exc.reason)
        if isinstance(exc, Forbidden):
            body["permission"] = exc.permission
        _note(request, exc.code, exc.reason)
        return JSONResponse(body, status_code=exc.http_status, headers=headers)

    return app
