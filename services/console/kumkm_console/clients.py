"""The services' HTTP APIs, called with the signed-in person's token (``Authorization: Bearer``).

The console keeps nothing it reads: each page asks the service that owns the facts. An answer other than
2xx becomes an ``ApiError`` (403 is shown as "not allowed", 404 as "not found"); a service that does not
answer becomes ``Unavailable``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import httpx

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

Service = Literal["loans", "catalog", "notifications", "monitoring"]
SERVICES: tuple[Service, ...] = ("loans", "catalog", "notifications", "monitoring")
# The services whose consumers dead-letter (each serves its own dead letters at /dlq).
DLQ_SERVICES: tuple[Service, ...] = ("loans", "catalog", "notifications", "monitoring")


class ApiError(Exception):
    def __init__(self, service: str, status: int, body: Any) -> None:
        super().__init__(f"{service} answered {status}")
        self.service = service
        self.status = status
        self.body = body

    @property
    def code(self) -> str:
        if isinstance(self.body, dict):
            return str(self.body.get("error") or self.body.get("code") or self.status)
        return str(self.status)

    @property
    def message(self) -> str:
        body = self.body
        if isinstance(body, dict):
            for key in ("message", "detail", "error_description"):
                value = body.get(key)
                if isinstance(value, str):
                    return value
                if isinstance(value, list) and value and isinstance(value[0], dict):
                    first = value[0]
                    where = ".".join(str(p) for p in first.get("loc", []))
                    return f"{where}: {first.get('msg', '')}"
        return f"HTTP {self.status}"


class Unavailable(Exception):  # noqa: N818 - a state of a service, not a crash
    def __init__(self, service: str) -> None:
        super().__init__(f"{service} does not answer")
        self.service = service


class Services:
    """One connection pool for all services; each call carries the caller's token."""

    def __init__(self, urls: Mapping[str, str], timeout: float) -> None:
        self.urls = dict(urls)
        self._http = httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    def _url(self, service: str, path: str) -> str:
        return f"{self.urls[service]}{path}"

    async def _send(
        self,
        method: str,
        service: str,
        path: str,
        token: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        try:
            response = await self._http.request(
                method,
                self._url(service, path),
                params=clean,
                json=json,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )
        except httpx.HTTPError as error:
            raise Unavailable(service) from error
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if response.status_code >= httpx.codes.BAD_REQUEST:
            raise ApiError(service, response.status_code, body)
        return body

    async def get(self, service: str, path: str, token: str, params: Mapping[str, Any] | None = None) -> Any:
        return await self._send("GET", service, path, token, params=params)

    async def post(self, service: str, path: str, token: str, body: Any = None) -> Any:
        return await self._send("POST", service, path, token, json=body if body is not None else {})

    async def stream(
        self, service: str, path: str, token: str, params: Mapping[str, Any] | None = None
    ) -> AsyncIterator[bytes]:
        """A streamed body (the outreach CSV), passed on as it arrives."""
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        request = self._http.build_request(
            "GET", self._url(service, path), params=clean, headers={"Authorization": f"Bearer {token}"}
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as error:
            raise Unavailable(service) from error
        if response.status_code >= httpx.codes.BAD_REQUEST:
            await response.aread()
            await response.aclose()
            try:
                body = response.json()
            except ValueError:
                body = response.text
            raise ApiError(service, response.status_code, body)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_bytes():
                    yield chunk
            finally:
                await response.aclose()

        return chunks()
