"""The HTTP skeleton every service shares: health, readiness, metrics, structured errors, and the
dependencies routes use are in ``kumkm_shared.service.deps``.

Errors map to HTTP here and nowhere else: a ``Refusal`` answers its ``http_status`` (409, 404, 503), a
``ContractError`` or an invalid request (a body that is not UTF-8 too) 422 naming each field. Handlers never
raise HTTP errors. Every error answer is one envelope (``error_body``, documented as ``ErrorEnvelope``):
an unknown route (404), a method the path does not have (405, with an ``Allow`` header naming every method
it has), a body over the limit (413, ``guard.InputGuard``) and sign-in's 401, 403 and 503 too.

The OpenAPI document says so (``document_errors``): each operation lists the error answers it can give,
with the envelope as their schema, and every free string parameter or body field carries the pattern that
is enforced (no NUL character: ``guard.InputGuard`` for parameters, ``contracts.types.validate_text`` in
bodies).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from kumkm_shared.contracts import ContractError
from kumkm_shared.errors import Forbidden, Refusal, Retry
from kumkm_shared.service.envelope import error_body, send_error
from kumkm_shared.service.guard import InputGuard
from kumkm_shared.service.signin import is_public

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator, MutableMapping


DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024  # InfraSettings.http_max_body_bytes (KUMKM_HTTP_MAX_BODY_BYTES)
BEARER: Final = "bearer"  # the security scheme of every signed-in operation
NO_NUL: Final = "^[^\\x00]*$"  # what the guard enforces on every string, as an OpenAPI pattern


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


class FieldError(BaseModel):
    field: str = Field(description="the field, dotted (`proposal.0.amount`); `body` for the body itself")
    message: str


class ErrorEnvelope(BaseModel):
    """Every error answer of every service (``error_body``)."""

    error: str = Field(description="a stable code: validation_failed, unauthenticated, forbidden, ...")
    message: str = Field(description="for people; names each field when the request was invalid")
    errors: list[FieldError] = Field(description="one per invalid field; empty for other errors")
    permission: str | None = Field(default=None, description="403 only: the permission the route needs")


_DESCRIPTIONS: Final = {
    "401": "no valid access token (`WWW-Authenticate` says why)",
    "403": "the token's roles or regions do not allow this (`permission` names what is needed)",
    "404": "the thing named does not exist",
    "409": "refused: the request can never be applied in the state things are in (`error` says why)",
    "413": "the body is larger than the limit (`KUMKM_HTTP_MAX_BODY_BYTES`)",
    "422": "the request is invalid: each field named in `errors`",
    "503": "not now: a dependency (database, broker, the identity provider's keys) is unavailable; retry",
}


def _envelope_response(code: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/ErrorEnvelope"}
    return {"description": _DESCRIPTIONS[code], "content": {"application/json": {"schema": schema}}}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that can answer ``codes`` beyond what ``document_errors`` adds to every
    operation of its kind (404 where a body names something that may not exist, 409 on a read that can be
    refused)."""
    return {code: {"model": ErrorEnvelope, "description": _DESCRIPTIONS[str(code)]} for code in codes}


def links(
    status: int, parameter: str, *targets: tuple[str, str], source: str | None = None
) -> dict[str, Any]:
    """``openapi_extra=`` for a route whose ``status`` answer holds ``parameter`` as a body member that each
    of ``targets`` (method, path) takes in its path: OpenAPI links, which stateful tests follow.
    ``source``: another runtime expression for the value (``$request.path.party_id``)."""

    def ref(method: str, path: str) -> str:
        return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method.lower()

    named = {
        re.sub(r"[^A-Za-z0-9]+", "_", f"{method.lower()}{path}").strip("_"): {
            "operationRef": ref(method, path),
            "parameters": {parameter: source or f"$response.body#/{parameter}"},
        }
        for method, path in targets
    }
    return {"responses": {str(status): {"links": named}}}


# String formats whose grammar has no NUL in it (``password``, for one, is not among them).
_STRUCTURED: Final = frozenset(
    {"date", "date-time", "time", "duration", "email", "uri", "uuid", "ipv4", "ipv6"}
)


def _forbid_nul(node: Any) -> None:
    """Give every free string schema (no enum, const, pattern or structured format) the NUL-free pattern:
    the guard refuses a NUL in a parameter, and every text type of a body refuses one itself."""
    if isinstance(node, list):
        for item in node:
            _forbid_nul(item)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if (
        (kind == "string" or (isinstance(kind, list) and "string" in kind))
        and not ({"enum", "const", "pattern"} & node.keys())
        and node.get("format") not in _STRUCTURED
    ):
        node["pattern"] = NO_NUL
    for key, value in node.items():
        if key not in ("example", "examples", "default", "const", "enum"):
            _forbid_nul(value)


def _error_codes(
    path: str, method: str, operation: dict[str, Any], public: Callable[[str], bool]
) -> list[str]:
    codes = {"422"}
    if not public(path):
        codes |= {"401", "403", "503"}
        if method != "get":
            codes.add("409")
    if "requestBody" in operation:
        codes.add("413")
    if any(p.get("in") == "path" for p in operation.get("parameters", [])):
        codes.add("404")
    return sorted(codes)


def document_errors(document: dict[str, Any], *, public: Callable[[str], bool] = is_public) -> dict[str, Any]:
    """The OpenAPI ``document`` telling the truth about errors: each operation lists 422 (any request can
    be invalid, a NUL in a query string included); a signed-in one 401, 403 and 503 (sign-in); one with a
    body 413; one with a path parameter 404; a command (not GET) 409. Each answers the envelope. A signed-in
    operation names the bearer scheme it needs."""
    document.setdefault("components", {})
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method not in {"get", "put", "post", "delete", "patch"}:
                continue
            if not public(path):
                operation["security"] = [{BEARER: []}]
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for code in _error_codes(path, method, operation, public):
                if code == "422" or code not in responses:
                    responses[code] = _envelope_response(code)
                else:
                    responses[code].setdefault("content", _envelope_response(code)["content"])
    document["components"].setdefault("securitySchemes", {})[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "an access token of the platform's OpenID provider (docs/rules/access.md)",
    }
    components = document["components"].setdefault("schemas", {})
    envelope = ErrorEnvelope.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(envelope.pop("$defs", {}))
    components["ErrorEnvelope"] = envelope
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused not in json.dumps(document.get("paths", {})):
            components.pop(unused, None)
    _forbid_nul(document.get("paths", {}))
    _forbid_nul(components)
    return document


def _leaf_routes(app: FastAPI) -> Iterator[Any]:  # the order FastAPI tries them in
    """Every route of the app, through the routers it includes (FastAPI keeps an included router as one
    entry, whose candidates are its routes with the prefix applied)."""
    stack = list(reversed(app.router.routes))
    while stack:
        route = stack.pop()
        candidates = getattr(route, "effective_candidates", None)
        if callable(candidates):
            stack.extend(reversed(candidates()))
        else:
            yield route


def _path_params(app: FastAPI, scope: MutableMapping[str, Any]) -> dict[str, str]:
    """The path parameters of the route ``scope``'s path matches (any method), as sent."""
    for route in _leaf_routes(app):
        match, child = route.matches(scope)
        if match is not Match.NONE:
            return {str(k): str(v) for k, v in child.get("path_params", {}).items()}
    return {}


def _allowed(app: FastAPI, scope: MutableMapping[str, Any]) -> list[str]:
    """Every method of every route whose path matches: Starlette's own 405 names only the first route's."""
    methods: set[str] = set()
    for route in _leaf_routes(app):
        if route.matches(scope)[0] is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def _http_error(app: FastAPI, request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own HTTP errors (an unknown route, a method the path lacks) in the envelope."""
    headers = dict(exc.headers or {})
    status = exc.status_code
    if status == 405:  # noqa: PLR2004
        headers["Allow"] = ", ".join(_allowed(app, request.scope))
        message = f"{request.method} is not a method of {request.url.path}; it has {headers['Allow']}"
        return JSONResponse(error_body("method_not_allowed", message), status_code=status, headers=headers)
    if status == 404:  # noqa: PLR2004 - an unknown route (a route's own 404 is a NotFound)
        message = f"no route {request.url.path}"
        return JSONResponse(error_body("not_found", message), status_code=status, headers=headers)
    code = "request_refused" if status < 500 else "server_error"  # noqa: PLR2004
    return JSONResponse(error_body(code, str(exc.detail)), status_code=status, headers=headers)


def create_http_app(  # noqa: C901 - the handlers are small and nested to share the app; one per error kind
    *,
    title: str,
    description: str,
    readiness: Callable[[], Awaitable[dict[str, bool]]],
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    app = FastAPI(title=title, description=description, version="1.0.0")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=title, version=app.version, description=description, routes=app.routes
            )
            app.openapi_schema = document_errors(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    def path_params(scope: MutableMapping[str, Any]) -> dict[str, str]:
        return _path_params(app, scope)

    app.add_middleware(InputGuard, max_body_bytes=max_body_bytes, answer=send_error, path_params=path_params)

    @app.get("/health/live", tags=["health"])
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/health/ready",
        tags=["health"],
        responses={503: {"description": "a dependency is down: `checks` says which"}},
    )
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
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        cause = exc.__cause__
        if isinstance(cause, UnicodeDecodeError):
            # A body that is not UTF-8 is invalid input like malformed JSON: 422 naming the body (FastAPI
            # itself answers 400 {"detail": ...}). Other HTTP errors (unknown route, method): the envelope.
            message = f"the body is not UTF-8 JSON: {cause.reason} at byte {cause.start}"
            errors = [{"field": "body", "message": message}]
            return JSONResponse(error_body("validation_failed", f"body: {message}", errors), status_code=422)
        return _http_error(app, request, exc)

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
