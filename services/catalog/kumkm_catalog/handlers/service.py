"""``CatalogService``: the one object the app wires, composing the per-aggregate handlers.

Event handlers take the ``EventContext`` of the consumer wrapper (or of ``runtime.submit`` for an event
that came with an HTTP command); commands take a ``Work`` from ``runtime.command`` (the runtime owns the
transaction), and the tick, which runs in batches, a ``begin`` that opens one. See
``docs/architecture.md``, section "The shape of a service".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kumkm_catalog.handlers.lifecycle import STEPS, OrderLifecycle
from kumkm_catalog.handlers.operator import OperatorCommands
from kumkm_catalog.handlers.placement import OrderPlacement
from kumkm_catalog.handlers.products import ProductHandlers
from kumkm_shared.clock import business_date
from kumkm_shared.contracts import OrderPlaced, ProductStockUpdated, ProductSubmitted

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kumkm_catalog.settings import CatalogSettings
    from kumkm_shared import Clock, Handler


class CatalogService:
    """Products (submission, curation, stock, delisting), order placement, the order lifecycle, and the
    operator's commands (cancel, tick)."""

    def __init__(self, settings: CatalogSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.products = ProductHandlers(settings.curation_rules(), clock)
        rules = settings.order_rules()
        this_year = business_date(clock).year
        rules.calendar.load(this_year, this_year + 1)  # a deadline may fall in the next year
        self.placement = OrderPlacement(rules, clock)
        self.lifecycle = OrderLifecycle(clock)
        self.operator = OperatorCommands(clock, settings.confirmation_working_days)
        # the commands, by name
        self.curate = self.products.curate
        self.delist = self.products.delist
        self.cancel = self.operator.cancel
        self.tick = self.operator.tick

    def handlers(self) -> Mapping[str, Handler]:
        """The ``catalog`` durable's handlers, by event type."""
        return {
            ProductSubmitted.event_type: self.products.on_product_submitted,
            ProductStockUpdated.event_type: self.products.on_stock_updated,
            OrderPlaced.event_type: self.placement.on_order_placed,
        } | dict.fromkeys(STEPS, self.lifecycle.on_order_step)
