"""One family of refusals: every "no" a handler, a command or a domain rule can say has a code and a reason.

Rules: ``docs/rules/messaging.md``, section "Refusals". The consumer wrapper turns them into the
bus's outcomes (DLQ, retry, announcement); ``kumkm_shared.service.http`` turns them into HTTP answers, in one
place, by ``http_status``. Nothing else maps them. This module is pure: domain packages subclass it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from kumkm_shared.contracts import EventData

__all__ = ["Forbidden", "NotFound", "Refusal", "Retry"]


class Refusal(Exception):  # noqa: N818 - a verdict, not a crash
    """Well-formed, but it can never be done as asked (``paid`` before ``delivered``, a stale revision).

    - On the bus: rolled back, dead-lettered with ``code`` and ``reason``, terminated (never retried).
      ``outcome``, when given, is an event that tells the parties of the refusal (``order.step_refused``):
      after the dead letter is written, the wrapper commits it to the outbox, caused by the refused event,
      once per refused event id. The refused event stays unclaimed in the inbox, so an operator's replay
      from the DLQ is applied normally.
    - Over HTTP: ``http_status`` (409 unless a subclass says otherwise) with ``{"error": code, ...}``.

    Use an outcome event of the contract instead when there is one (``order.rejected``).
    """

    http_status: ClassVar[int] = 409

    def __init__(self, code: str, reason: str, *, outcome: EventData | None = None) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.outcome = outcome


class Forbidden(Refusal):
    """The actor may not do this: a permission its roles do not grant, a region outside its scope, or the
    maker acting as checker. HTTP 403 naming the permission; on the bus, a dead letter like any refusal.
    """

    http_status: ClassVar[int] = 403

    def __init__(self, permission: str, reason: str | None = None, *, code: str = "forbidden") -> None:
        super().__init__(code, reason or f"this needs the permission {permission!r}")
        self.permission = permission


class NotFound(Refusal):
    """The thing the request names does not exist: HTTP 404 (on the bus, a dead letter like any refusal)."""

    http_status: ClassVar[int] = 404

    def __init__(self, what: str, ident: str) -> None:
        super().__init__("not_found", f"{what} {ident!r} not found")
        self.what = what
        self.ident = ident


class Retry(Refusal):
    """Not yet, but maybe later (a repayment before its disbursement).

    On the bus: rolled back, nacked with a delay that grows with the delivery count (or ``delay``); after
    ``max_deliver`` deliveries, dead-lettered with ``code``. Over HTTP: 503, try again later. A command
    path that knows the answer is final (an HTTP request naming an unknown loan) raises ``NotFound``.
    """

    http_status: ClassVar[int] = 503

    def __init__(self, code: str, reason: str, *, delay: float | None = None) -> None:
        super().__init__(code, reason)
        self.delay = delay
