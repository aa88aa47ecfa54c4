"""The one error envelope of every service: ``{"error", "message", "errors": [{"field", "message"}]}``.

``error_body`` builds it for routes and exception handlers (``service/http.py``); ``send_error`` sends it as
a raw ASGI answer, for the middleware that answers before any route (sign-in's 401 and 503, the input
guard's 413 and 422).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kumkm_shared.service.guard import Send


def error_body(code: str, message: str, errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"error": code, "message": message, "errors": errors or []}


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    problems: list[tuple[str, str]],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """The envelope as a raw ASGI answer, for middleware that answers before any route."""
    errors = [{"field": field, "message": text} for field, text in problems]
    body = json.dumps(error_body(code, message, errors)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
