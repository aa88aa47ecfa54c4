"""Small pieces the order handlers share."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from kumkm_catalog.domain.orders import OrderStatus
    from kumkm_shared import EventContext


def history_entry(ctx: EventContext, status: OrderStatus, at: datetime) -> dict[str, Any]:
    """The order history's record of a status reached by applying the event in ``ctx``."""
    return {
        "status": status.value,
        "at": at.isoformat(),
        "event_id": str(ctx.envelope.id),
        "event": ctx.envelope.type,
    }
