"""FastAPI dependencies every service's routes use: the runtime, the service object and the actor.

Routers are module-level ``APIRouter`` objects; what a route needs arrives by ``Depends``, never by a
closure. The runtime puts itself and the definition's ``service`` on ``app.state``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from kumkm_shared.origin import ANONYMOUS, Actor, Command
from kumkm_shared.service.runtime import ServiceRuntime

__all__ = ["ActorDep", "CommandDep", "RuntimeDep", "service_of"]


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


def service_of(request: Request) -> Any:
    """The definition's ``service`` object; each service wraps this in a typed dependency of its own."""
    return request.app.state.runtime.definition.service


def _actor(request: Request) -> Actor:
    """The caller. Until sign-in exists every HTTP caller is ``ANONYMOUS``; it is never read from a body."""
    actor: Actor = getattr(request.state, "actor", ANONYMOUS)
    return actor


def _command(actor: Annotated[Actor, Depends(_actor)]) -> Command:
    return Command(actor, via="http")


RuntimeDep = Annotated[ServiceRuntime, Depends(_runtime)]
ActorDep = Annotated[Actor, Depends(_actor)]
CommandDep = Annotated[Command, Depends(_command)]
