"""Regions: a person sees and decides only the loans and requests inside their scope (``docs/rules/loans.md``,
"Regions").

The scope is the verified actor's (``kumkm_shared.origin.Actor.scope``). Lists are filtered in SQL by the
same scope (``RegionScope.sql``); a single loan or request outside it, and a command on one, is refused here
with 403 ``outside_region``.
"""

from __future__ import annotations

from kumkm_shared.auth.scope import asked_region as progress_region
from kumkm_shared.auth.scope import check_in_scope

__all__ = ["check_in_scope", "progress_region"]
