"""Webhooks: an HTTP POST of JSON, signed with HMAC-SHA256 over the exact body (httpx, with timeouts).

The receiver verifies ``X-KUMKM-Signature: sha256=<hex>`` with its secret and de-duplicates on
``Idempotency-Key`` (the notification id, the same on every attempt).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

import httpx

from kumkm_notifications.domain.delivery import Outcome, http_reply

if TYPE_CHECKING:
    from kumkm_notifications.channels import OutgoingMessage

SIGNATURE_HEADER = "X-KUMKM-Signature"


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str) -> bool:
    """What a receiver does; used by the tests' receiving server."""
    return hmac.compare_digest(sign(body, secret), header)


def retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from webhooks, and the backoff covers it


async def post(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float,  # noqa: ASYNC109 - httpx applies it to each phase of the request
) -> Outcome:
    try:
        response = await client.post(url, content=body, headers=headers, timeout=timeout)
    except httpx.TimeoutException as exc:
        return Outcome.transient("timeout", f"{type(exc).__name__} after {timeout}s")
    except httpx.ConnectError as exc:
        return Outcome.transient("connection_refused", f"ConnectError: {exc}")
    except httpx.HTTPError as exc:
        return Outcome.transient("http_transport", f"{type(exc).__name__}: {exc}")
    return http_reply(response.status_code, response.text, retry_after(response.headers.get("Retry-After")))


class HttpSender:
    """A channel that sends over HTTP (``post``): one client, which follows no redirect and names the
    service in its User-Agent, closed with the sender."""

    def __init__(self) -> None:
        self.client = httpx.AsyncClient(
            follow_redirects=False, headers={"User-Agent": "kumkm-notifications/1"}
        )

    async def close(self) -> None:
        await self.client.aclose()


class WebhookSender(HttpSender):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    async def send(self, message: OutgoingMessage) -> Outcome:
        if not message.secret:
            return Outcome.permanent("no_webhook_secret", "no signing secret is set for this party")
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(message.payload, message.secret),
            "Idempotency-Key": str(message.id),
            "X-KUMKM-Delivery": str(message.id),
            "X-KUMKM-Event-Type": message.event_type,
            "X-KUMKM-Attempt": str(message.attempt),
        }
        return await post(self.client, message.address, message.payload, headers, self.timeout)
