"""The catalog's handlers and commands, by aggregate, behind the ``CatalogService`` facade.

- ``products``: submission, curation, stock, delisting;
- ``placement``: ``order.placed``, accepted or rejected;
- ``lifecycle``: the table-driven steps confirmed, shipped, delivered and paid;
- ``operator``: cancel, and the tick that cancels orders overdue for confirmation;
- ``strictness``: the one rule for events that do not apply, by origin (command or stream delivery).
"""

from kumkm_catalog.handlers.service import CatalogService

__all__ = ["CatalogService"]
