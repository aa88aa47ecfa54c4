"""The one rule for an event that does not apply: strict for a command, tolerant for a stream delivery.

Integrator events arrive through the ``catalog`` durable, or with an HTTP command through
``runtime.submit``; both paths run the same handler, and ``ctx.is_command`` (the origin the runtime set,
never the envelope's ``source``) tells them apart (``docs/rules/messaging.md``, sections "Origin and actor"
and "Refusals"). Every handler classifies what it cannot apply with the state machine's ``Verdict`` and
asks ``handling`` what to do:

=========  ================================================  ==============  ===========================
verdict    examples                                          command (HTTP)  stream delivery
=========  ================================================  ==============  ===========================
stale      a revision that is not newer, an older stock      refuse (409)    ignore, with a log line
           count, an order placed again, ``confirmed``
           when the order is already ``shipped``
ahead      an unknown product or order, ``shipped`` while    refuse (404 or  park: ``Retry``, redelivered
           the order is only ``accepted``                    409)            with backoff, DLQ after
                                                                             ``max_deliver``
illegal    ``shipped`` after ``cancelled``, another seller   refuse (409)    refuse: DLQ at once
=========  ================================================  ==============  ===========================

A lifecycle step still ahead at its last delivery is refused rather than parked once more, so that the
order's parties hear of it. Only a refusal from the stream announces itself to the parties
(``order.step_refused``); a command's caller gets the 409 instead (``announces_refusals``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from kumkm_catalog.domain.orders import Verdict

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kumkm_shared import EventContext

__all__ = ["HANDLING", "Handling", "announces_refusals", "handling"]


class Handling(StrEnum):
    REFUSE = "refuse"  # raise a Refusal (or NotFound): 409/404 over HTTP, a dead letter on the bus
    PARK = "park"  # raise Retry: the missing event may be in flight
    IGNORE = "ignore"  # log and return: the event's effect is already there, or superseded


# verdict -> (for a command, for a stream delivery)
HANDLING: Mapping[Verdict, tuple[Handling, Handling]] = {
    Verdict.STALE: (Handling.REFUSE, Handling.IGNORE),
    Verdict.AHEAD: (Handling.REFUSE, Handling.PARK),
    Verdict.ILLEGAL: (Handling.REFUSE, Handling.REFUSE),
}


def handling(verdict: Verdict, ctx: EventContext) -> Handling:
    """What to do with an event in ``ctx`` that does not apply (``verdict`` is never ``apply``)."""
    for_command, for_stream = HANDLING[verdict]
    return for_command if ctx.is_command else for_stream


def announces_refusals(ctx: EventContext) -> bool:
    """Whether a refusal of the event in ``ctx`` carries an outcome event for the parties."""
    return not ctx.is_command
