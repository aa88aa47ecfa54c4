"""Sign-in at the door: an ASGI middleware that verifies the bearer token of every request but health,
metrics and the API description, and writes the audit record of each request that needs one.

It runs before routing, so a request without a valid token is answered 401 whatever it asks for (an unknown
path included: nothing about the routes is learnt without a token), before its body is read. The verified
``Actor`` goes to ``request.state.actor``; routes get it by ``deps.ActorDep``.
Rules: ``docs/rules/access.md``.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

import structlog

from kumkm_shared.audit import store as audit_store
from kumkm_shared.audit.draft import AuditDraft
from kumkm_shared.auth.verify import InvalidToken
from kumkm_shared.errors import Retry
from kumkm_shared.service.envelope import send_error

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from kumkm_shared.service.runtime import ServiceRuntime

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = structlog.get_logger(__name__)

PUBLIC_PREFIXES = ("/health/", "/docs", "/redoc")
PUBLIC_PATHS = frozenset({"/metrics", "/openapi.json"})
REALM = "kumkm"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _bearer(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return ""
    return token.strip()


def challenge(reason: str | None) -> str:
    """The ``WWW-Authenticate`` value (RFC 6750): no error code when no token was shown at all."""
    if reason is None:
        return f'Bearer realm="{REALM}"'
    safe = reason.replace('"', "'")
    return f'Bearer realm="{REALM}", error="invalid_token", error_description="{safe}"'


class SignInMiddleware:
    def __init__(self, app: ASGIApp, runtime: ServiceRuntime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        request_id = given if given is not None and _REQUEST_ID.match(given) else uuid.uuid4().hex
        client = scope.get("client")
        draft = AuditDraft(
            method=scope.get("method", "GET"),
            path=scope.get("path", ""),
            request_id=request_id,
            client=str(client[0]) if client else None,
        )
        state = scope.setdefault("state", {})
        state["audit"] = draft
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            token = _bearer(scope)
            if not token:
                reason = None if token is None else "the Authorization header is not 'Bearer <token>'"
                draft.reason = reason or "no bearer token"
                await self._unauthenticated(send_with_id, reason, draft.reason)
                return
            try:
                actor = await self.runtime.verifier.verify(token)
            except InvalidToken as exc:
                draft.reason = exc.reason
                await self._unauthenticated(send_with_id, exc.reason, exc.reason)
                return
            except Retry as exc:
                draft.reason = exc.reason
                await send_error(send_with_id, 503, exc.code, exc.reason, [], [(b"retry-after", b"5")])
                return
            draft.actor = actor
            state["actor"] = actor
            await self.app(scope, receive, send_with_id)
        finally:
            if draft.route is None and "route" in scope:
                draft.name_route(scope["route"], scope.get("path_params") or {})
            if draft.needs_record(status):
                await self._record(draft, status)

    async def _unauthenticated(self, send: Send, reason: str | None, message: str) -> None:
        await send_error(
            send, 401, "unauthenticated", message, [], [(b"www-authenticate", challenge(reason).encode())]
        )

    async def _record(self, draft: AuditDraft, status: int) -> None:
        try:
            async with self.runtime.pool.acquire() as conn:
                await audit_store.insert(conn, draft, status=status, outcome=draft.outcome_for(status))
        except Exception as exc:  # the answer is sent; losing the trace must be loud, never silent
            log.error(  # noqa: TRY400 - no traceback: its locals could hold personal data
                "audit record not written",
                route=draft.route or draft.path,
                status=status,
                request_id=draft.request_id,
                error=type(exc).__name__,
            )
