"""FastAPI dependencies every service's routes use: the runtime, the service object, the actor and the
permission a route needs.

Routers are module-level ``APIRouter`` objects; what a route needs arrives by ``Depends``, never by a
closure. The runtime puts itself and the definition's ``service`` on ``app.state``. Every route declares
exactly one permission, ``@router.post(..., dependencies=[Require("loans.restructuring.decide")])``; the
runtime refuses to serve a router with a route that declares none or one the service's table does not know.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from kumkm_shared.errors import Forbidden
from kumkm_shared.origin import ANONYMOUS, Actor, Command
from kumkm_shared.service.runtime import ServiceRuntime

if TYPE_CHECKING:
    from kumkm_shared.audit.draft import AuditDraft

__all__ = ["ActorDep", "CommandDep", "Require", "RuntimeDep", "permission_of", "service_of"]

PERMISSION_ATTRIBUTE = "kumkm_permission"


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


def service_of(request: Request) -> Any:
    """The definition's ``service`` object; each service wraps this in a typed dependency of its own."""
    return request.app.state.runtime.definition.service


def _actor(request: Request) -> Actor:
    """The caller, verified from its access token by ``signin.SignInMiddleware``; never read from a body."""
    actor: Actor = getattr(request.state, "actor", ANONYMOUS)
    return actor


def _trail(request: Request) -> AuditDraft | None:
    """The request's audit record, with its route named (routing is done once a dependency runs)."""
    draft: AuditDraft | None = getattr(request.state, "audit", None)
    if draft is not None and draft.route is None and "route" in request.scope:
        draft.name_route(request.scope["route"], dict(request.path_params))
    return draft


def _command(request: Request, actor: Annotated[Actor, Depends(_actor)]) -> Command:
    return Command(actor, via="http", trail=_trail(request))


def Require(permission: str, *, audit_reads: bool = False) -> Any:  # noqa: N802 - reads as a declaration
    """The permission a route needs: 403 naming it unless one of the actor's roles grants it.

    ``audit_reads``: the route shows personal data, so a successful read is recorded in the audit trail too.
    """

    async def require(request: Request) -> Actor:
        actor = _actor(request)
        runtime: ServiceRuntime = request.app.state.runtime
        if not actor.has_any(runtime.permissions[permission]):
            raise Forbidden(permission)
        draft = _trail(request)
        if audit_reads and draft is not None:
            draft.audit_read = True
        return actor

    setattr(require, PERMISSION_ATTRIBUTE, permission)
    return Depends(require)


def permission_of(dependency: Any) -> str | None:
    """The permission a ``Require`` dependency stands for, else ``None``."""
    value = getattr(getattr(dependency, "dependency", None), PERMISSION_ATTRIBUTE, None)
    return value if isinstance(value, str) else None


RuntimeDep = Annotated[ServiceRuntime, Depends(_runtime)]
ActorDep = Annotated[Actor, Depends(_actor)]
CommandDep = Annotated[Command, Depends(_command)]
