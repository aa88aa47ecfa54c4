"""How a service's own CLI commands (``kumkm loans tick`` ...) reach that service's HTTP API.

The base URL comes from ``--url`` or from the running system's ``run.json``. Errors are reported the same
way for every service: unreachable → exit 3; a refusal (409) or anything else → exit 1; invalid input
(400, 422) → exit 2; each with the API's error code, message and field errors.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import httpx
import typer

from kumkm_shared.cli.runinfo import SystemNotFoundError, find_system

if TYPE_CHECKING:
    from pathlib import Path

EXIT_REFUSED, EXIT_INVALID, EXIT_UNREACHABLE = 1, 2, 3


def service_url(service: str, url: str | None, data_dir: Path | None) -> str:
    if url:
        return url.rstrip("/")
    try:
        info = find_system(data_dir)
    except SystemNotFoundError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_UNREACHABLE) from None
    found = info.services.get(service)
    if not found:
        typer.echo(f"the {service} service is not running (not in run.json); pass --url", err=True)
        raise typer.Exit(EXIT_UNREACHABLE)
    return found.rstrip("/")


def call_service(
    service: str,
    method: str,
    path: str,
    *,
    url: str | None,
    data_dir: Path | None,
    timeout: float = 120.0,
    **kwargs: Any,
) -> Any:
    """Call ``service``'s API and return the decoded JSON body, or exit with a clear message."""
    base = service_url(service, url, data_dir)
    try:
        response = httpx.request(method, f"{base}{path}", timeout=timeout, **kwargs)
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach the {service} service at {base}: {exc}", err=True)
        raise typer.Exit(EXIT_UNREACHABLE) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if not response.is_error:
        return body
    detail = body if isinstance(body, dict) else {}
    code = detail.get("error", HTTPStatus(response.status_code).phrase)
    typer.echo(f"error {response.status_code} {code}: {detail.get('message') or response.text}", err=True)
    for error in detail.get("errors", []):
        typer.echo(f"  {error.get('field')}: {error.get('message')}", err=True)
    invalid = response.status_code in (HTTPStatus.BAD_REQUEST, HTTPStatus.UNPROCESSABLE_ENTITY)
    raise typer.Exit(EXIT_INVALID if invalid else EXIT_REFUSED)
