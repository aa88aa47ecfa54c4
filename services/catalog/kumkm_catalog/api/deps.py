"""The catalog's typed FastAPI dependency: the ``CatalogService`` the definition carries."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from kumkm_catalog.handlers import CatalogService
from kumkm_shared.service.deps import service_of

CONSUMER = "catalog"  # the durable whose handlers events submitted over HTTP go through


def _service(request: Request) -> CatalogService:
    return cast("CatalogService", service_of(request))


ServiceDep = Annotated[CatalogService, Depends(_service)]
