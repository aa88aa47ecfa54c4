"""Delivery rules: statuses, what a send attempt's outcome means, and when to try again. Pure.

Rules: ``docs/rules/notifications.md``, section "Delivery and retries".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from kumkm_shared.contracts import Channel
from kumkm_shared.errors import Refusal

if TYPE_CHECKING:
    from uuid import UUID

    from kumkm_shared.backoff import Backoff

SMTP_TRANSIENT = range(400, 500)
SMTP_PERMANENT = range(500, 600)
HTTP_OK = range(200, 300)
HTTP_TOO_MANY_REQUESTS = 429
HTTP_SERVER_ERROR = range(500, 600)


class Status(StrEnum):
    PENDING = "pending"  # waiting for its (next) attempt
    SENDING = "sending"  # an attempt is recorded and the send is in flight
    DELIVERED = "delivered"
    FAILED = "failed"  # permanent error, or retries exhausted
    UNKNOWN = "unknown"  # the process died mid-send; an operator decides
    SUPPRESSED = "suppressed"  # the party opted out of the category
    NO_CONTACT = "no_contact"  # nobody to send to
    REROUTED = "rerouted"  # no_contact or suppressed, later routed by an operator: see the newer rows


FINAL = frozenset({Status.DELIVERED, Status.FAILED, Status.SUPPRESSED, Status.NO_CONTACT, Status.REROUTED})
UNROUTED = frozenset({Status.NO_CONTACT, Status.SUPPRESSED})  # recorded without a channel: reroutable


class NotReroutable(Refusal):
    """An operator's reroute (or resend) of a notification that cannot be routed, with the reason's code:
    ``not_unrouted`` (not a no_contact or suppressed one), ``no_event`` (recorded without its event),
    ``no_contact`` or ``suppressed`` (the party still cannot be reached)."""

    def __init__(self, notification_id: UUID, code: str, reason: str) -> None:
        super().__init__(code, f"notification {notification_id}: {reason}")
        self.notification_id = notification_id


class NotResendable(Refusal):
    """An operator's resend of a notification that is neither unknown, failed nor unrouted."""

    def __init__(self, notification_id: UUID, status: str) -> None:
        super().__init__(
            "not_resendable",
            f"notification is {status}; only unknown, failed, no_contact and suppressed ones are resent",
        )
        self.notification_id = notification_id
        self.status = status


class Verdict(StrEnum):
    DELIVERED = "delivered"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one send attempt came to, as a channel reports it."""

    verdict: Verdict
    code: str  # e.g. smtp_451, http_500, timeout, connection_refused
    response: str  # the provider's answer, kept for the activity feed
    retry_after: float | None = None  # the provider asked us to wait (HTTP Retry-After)

    @classmethod
    def delivered(cls, response: str) -> Outcome:
        return cls(Verdict.DELIVERED, "ok", response)

    @classmethod
    def transient(cls, code: str, response: str, retry_after: float | None = None) -> Outcome:
        return cls(Verdict.TRANSIENT, code, response, retry_after)

    @classmethod
    def permanent(cls, code: str, response: str) -> Outcome:
        return cls(Verdict.PERMANENT, code, response)


def smtp_reply(code: int, message: str) -> Outcome:
    """An SMTP refusal: 4xx is worth another try (greylisting, full queue), 5xx never is."""
    text = f"{code} {message}".strip()
    if code in SMTP_TRANSIENT:
        return Outcome.transient(f"smtp_{code}", text)
    if code in SMTP_PERMANENT:
        return Outcome.permanent(f"smtp_{code}", text)
    return Outcome.transient(f"smtp_{code}", text)  # a reply outside the spec: assume a glitch


def http_reply(status: int, body: str, retry_after: float | None = None) -> Outcome:
    """An HTTP answer: 2xx delivered; 429 and 5xx transient; any other status is permanent."""
    text = f"HTTP {status}: {body[:500]}".strip()
    if status in HTTP_OK:
        return Outcome.delivered(text)
    if status == HTTP_TOO_MANY_REQUESTS or status in HTTP_SERVER_ERROR:
        return Outcome.transient(f"http_{status}", text, retry_after)
    # 4xx: the receiver refuses this request as it is; 3xx: redirects are not followed (the URL is wrong).
    return Outcome.permanent(f"http_{status}", text)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    backoff: Backoff

    def next_step(self, outcome: Outcome, attempts: int) -> tuple[Status, float | None, str | None]:
        """After ``attempts`` attempts ending in ``outcome``: the new status, the wait before the next
        attempt (when there is one), and the failure reason code (when it failed for good)."""
        if outcome.verdict is Verdict.DELIVERED:
            return Status.DELIVERED, None, None
        if outcome.verdict is Verdict.PERMANENT:
            return Status.FAILED, None, outcome.code
        if attempts >= self.max_attempts:
            return Status.FAILED, None, "retries_exhausted"
        wait = self.backoff.delay(attempts)
        if outcome.retry_after is not None:
            wait = max(wait, min(outcome.retry_after, self.backoff.cap))
        return Status.PENDING, wait, None


# Channels whose receiver de-duplicates on the delivery id, so a send whose outcome was lost may be
# repeated safely. Email has no such guarantee: the Message-ID is stable, but most mailboxes show both.
IDEMPOTENT_CHANNELS = frozenset({Channel.WEBHOOK})


def after_lost_outcome(channel: Channel, *, gateway_idempotent: bool) -> Status:
    """A delivery found in 'sending' after its lease ran out (the process died mid-send)."""
    if channel in IDEMPOTENT_CHANNELS or (gateway_idempotent and channel in {Channel.SMS, Channel.WHATSAPP}):
        return Status.PENDING
    return Status.UNKNOWN
