"""How a service's own CLI commands (``kumkm loans tick`` ...) reach that service's HTTP API.

The base URL comes from ``--url`` or from the running system's ``run.json``. Every call sends a bearer
token: ``kumkm --token`` or ``KUMKM_TOKEN`` when given, else the stored login of ``kumkm login`` (renewed
when near expiry). Errors are reported the same way for every service: unreachable → exit 3; not signed in
(401), forbidden (403, naming the missing permission), a refusal (409) or anything else → exit 1; invalid
input (400, 422) → exit 2; each with the API's error code, message and field errors.
"""

from __future__ import annotations

import asyncio
import os
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import httpx
import typer

from kumkm_shared.cli.runinfo import SystemNotFoundError, find_system
from kumkm_shared.cli.signin import SIGN_IN_HINT, SignInError, find_login, stored_token

if TYPE_CHECKING:
    from pathlib import Path

EXIT_REFUSED, EXIT_INVALID, EXIT_UNREACHABLE = 1, 2, 3
TOKEN_ENV = "KUMKM_TOKEN"  # noqa: S105 - the name of an environment variable

_given_token: str | None = None  # ``kumkm --token``, for this process


def use_token(token: str | None) -> None:
    """The token every service call of this process sends (``kumkm --token``); None: look it up."""
    global _given_token  # noqa: PLW0603 - one CLI invocation per process
    _given_token = token or None


def bearer_token(data_dir: Path | None) -> str | None:
    """``--token``, else ``KUMKM_TOKEN``, else the stored login's (None when not signed in)."""
    given = _given_token or os.environ.get(TOKEN_ENV)
    if given:
        return given.strip()
    if find_login(data_dir) is None:
        return None
    try:
        return asyncio.run(stored_token(data_dir))
    except SignInError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_REFUSED) from None


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
    token = bearer_token(data_dir)
    headers = dict(kwargs.pop("headers", None) or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = httpx.request(method, f"{base}{path}", timeout=timeout, headers=headers, **kwargs)
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
    if response.status_code == HTTPStatus.UNAUTHORIZED:
        said = detail.get("message") or "no valid token"
        if token:
            typer.echo(f"the {service} service refused the token: {said}", err=True)
        else:
            typer.echo(f"not signed in: the {service} service answered {said}", err=True)
        typer.echo(SIGN_IN_HINT, err=True)
        raise typer.Exit(EXIT_REFUSED)
    if response.status_code == HTTPStatus.FORBIDDEN:
        permission = detail.get("permission")
        missing = f" (missing permission: {permission})" if permission else ""
        code = detail.get("error", "forbidden")
        typer.echo(f"error 403 {code}: {detail.get('message') or response.text}{missing}", err=True)
        raise typer.Exit(EXIT_REFUSED)
    code = detail.get("error", HTTPStatus(response.status_code).phrase)
    typer.echo(f"error {response.status_code} {code}: {detail.get('message') or response.text}", err=True)
    for error in detail.get("errors", []):
        typer.echo(f"  {error.get('field')}: {error.get('message')}", err=True)
    invalid = response.status_code in (HTTPStatus.BAD_REQUEST, HTTPStatus.UNPROCESSABLE_ENTITY)
    raise typer.Exit(EXIT_INVALID if invalid else EXIT_REFUSED)
