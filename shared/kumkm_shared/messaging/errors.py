"""How a handler tells the consumer wrapper what went wrong. See DESIGN.md section 5."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kumkm_shared.contracts import EventData


class Refused(Exception):  # noqa: N818 - a verdict, not a crash
    """The message is well-formed but can never be applied (e.g. ``paid`` before ``delivered``).

    The wrapper rolls back, puts the message in the DLQ with ``code`` and ``reason``, and terminates it.
    Use an outcome event instead when the contract has one (``order.rejected``), and ``Refused`` only
    for inputs that have no outcome event.

    ``outcome``, when given, is an event that tells the parties of the refusal (``order.step_refused``).
    After the dead letter is written, the wrapper commits it to the outbox, caused by the refused event,
    once per refused event id (a redelivery does not announce the refusal twice). The refused event stays
    unclaimed in the inbox, so an operator's replay from the DLQ is applied normally.
    """

    def __init__(self, code: str, reason: str, *, outcome: EventData | None = None) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.outcome = outcome


class Retry(Exception):  # noqa: N818 - an instruction, not a crash
    """The message cannot be applied yet but may later (e.g. a repayment before its disbursement).

    The wrapper rolls back and nacks with a delay that grows with the delivery count. After
    ``max_deliver`` attempts the message goes to the DLQ with ``code``.
    """

    def __init__(self, code: str, reason: str, *, delay: float | None = None) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.delay = delay
