"""Real receiving servers for the notification tests: an aiosmtpd SMTP server and an HTTP webhook server."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import uvicorn
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kumkm_notifications.channels.webhook import SIGNATURE_HEADER, verify
from kumkm_shared.testing import free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from email.message import EmailMessage

    from starlette.requests import Request


class SmtpHandler:
    """Accepts mail, or answers DATA with the scripted replies first (e.g. two 451s)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.data_replies: list[str] = []
        self.data_commands = 0
        self.delay = 0.0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802, ARG002 - aiosmtpd hook
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._lock:
            self.data_commands += 1
            if self.data_replies:
                return self.data_replies.pop(0)
            parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 2.0.0 OK queued"


@dataclass
class SmtpSink:
    host: str
    port: int
    handler: SmtpHandler

    @property
    def messages(self) -> list[EmailMessage]:
        return self.handler.messages


@contextlib.contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    handler = SmtpHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpSink("127.0.0.1", port, handler)
    finally:
        controller.stop()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool


@dataclass
class WebhookSink:
    """Verifies each request's signature with ``secret``; answers with the scripted statuses first."""

    secret: str
    port: int = 0
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    seen_keys: set[str] = field(default_factory=set)
    require_signature: bool = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        if self.delay:
            await asyncio.sleep(self.delay)
        verified = verify(body, self.secret, request.headers.get(SIGNATURE_HEADER, ""))
        self.received.append(Received(request.url.path, dict(request.headers), body, verified))
        if self.statuses:
            status = self.statuses.pop(0)
            return JSONResponse({"status": status}, status_code=status)
        if self.require_signature and not verified:
            return JSONResponse({"error": "bad signature"}, status_code=401)
        key = request.headers.get("idempotency-key", "")
        duplicate = key in self.seen_keys  # a real receiver de-duplicates on the key
        self.seen_keys.add(key)
        return JSONResponse({"accepted": True, "duplicate": duplicate})

    def accepted(self) -> list[Received]:
        """Requests whose key was new and whose signature was right: what the receiver acted on."""
        keys: set[str] = set()
        unique = []
        for r in self.received:
            key = r.headers.get("idempotency-key", "")
            if r.verified and key not in keys:
                keys.add(key)
                unique.append(r)
        return unique


@contextlib.asynccontextmanager
async def webhook_sink(
    secret: str = "kranggan-webhook-secret-2020",  # noqa: S107 - a test secret
    *,
    require_signature: bool = True,
) -> AsyncIterator[WebhookSink]:
    sink = WebhookSink(secret=secret, port=free_port(), require_signature=require_signature)
    app = Starlette(routes=[Route("/{path:path}", sink.hook, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=sink.port, log_config=None, access_log=False, lifespan="off"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.01)
    try:
        yield sink
    finally:
        server.should_exit = True
        await task
