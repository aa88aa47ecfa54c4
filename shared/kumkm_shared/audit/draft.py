"""What an HTTP request's audit record holds, filled in as the request goes (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kumkm_shared.origin import Actor

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ALWAYS_RECORDED = frozenset({401, 403, 409})  # refused attempts, on any method


@dataclass
class AuditDraft:
    method: str
    path: str  # the raw path, until routing names the route
    request_id: str
    client: str | None
    actor: Actor | None = None  # None: no valid token was shown
    route: str | None = None  # the route's template, e.g. /restructurings/{request_id}/decision
    command: str | None = None  # the route's name (its function), e.g. decide
    target: str | None = None  # the path parameters, e.g. request_id=RR-1
    outcome: str | None = None  # set by the error mappings: a refusal's code, forbidden, invalid
    reason: str | None = None  # why a refused attempt was refused (never a secret)
    audit_read: bool = False  # the route reads personal data: record a read too
    written: bool = False  # recorded inside a command's transaction already
    extra: dict[str, Any] = field(default_factory=dict)

    def name_route(self, route: Any, path_params: dict[str, Any]) -> None:
        template = getattr(route, "path", None)
        if isinstance(template, str):
            self.route = template
        name = getattr(route, "name", None)
        if isinstance(name, str):
            self.command = name
        if path_params:
            self.target = ",".join(f"{k}={v}" for k, v in sorted(path_params.items()))

    def needs_record(self, status: int) -> bool:
        """Whether the finished request still needs its record written (outside any transaction)."""
        if self.written:  # a command committed; record a failure that came after it too
            return status >= HTTPStatus.BAD_REQUEST
        if status in ALWAYS_RECORDED:
            return True
        return self.method not in SAFE_METHODS or self.audit_read

    def outcome_for(self, status: int) -> str:
        if self.outcome is not None:
            return self.outcome
        if status in _OUTCOMES:
            return _OUTCOMES[status]
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            return "error"
        return "ok" if status < HTTPStatus.BAD_REQUEST else "refused"


_OUTCOMES = {401: "unauthenticated", 403: "forbidden", 404: "not_found", 422: "invalid"}
