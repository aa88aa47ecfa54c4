"""Regions: a caller sees the figures, lists and parties of their scope only (``docs/rules/monitoring.md``,
"Regions"; the scope is the verified token's, ``kumkm_shared.auth.scope.RegionScope``).

A filter naming a region outside the scope is refused with 403 ``outside_region``; lists are filtered in SQL
by the same scope. A caller asking for no region gets their own when it is one province or one city.
"""

from __future__ import annotations

from kumkm_shared.auth.scope import asked_region as region_filter
from kumkm_shared.auth.scope import check_in_scope

__all__ = ["check_in_scope", "region_filter"]
