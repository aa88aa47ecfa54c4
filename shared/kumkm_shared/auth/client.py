"""Getting tokens from an OpenID provider (Keycloak, or the embedded one): discovery, the password grant,
client credentials, the device flow and refresh.

Tokens are `pydantic.SecretStr`: they never show in a repr, a log line or an error. Errors name the
client, the user and what the provider said, never the password or the secret.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import SecretStr

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SLOW_DOWN_STEP = 5.0  # seconds added to the polling interval on `slow_down` (RFC 8628, section 3.5)
TIMEOUT = 10.0


class TokenError(RuntimeError):
    """The provider refused a token request (`error` and `description` as it gave them) or is unreachable."""

    def __init__(self, message: str, *, error: str = "", description: str = "") -> None:
        super().__init__(message)
        self.error = error
        self.description = description


@dataclass(frozen=True)
class TokenSet:
    """A token response. `expires_at` is the access token's expiry in seconds since the epoch."""

    access_token: SecretStr
    expires_at: float
    refresh_token: SecretStr | None = None
    id_token: SecretStr | None = None
    scope: str = ""

    def expires_within(self, seconds: float) -> bool:
        return time.time() + seconds >= self.expires_at

    @property
    def bearer(self) -> str:
        """The access token itself (to put into an Authorization header)."""
        return self.access_token.get_secret_value()


@dataclass(frozen=True)
class Discovery:
    """The endpoints of a provider's ``/.well-known/openid-configuration``."""

    issuer: str
    token_endpoint: str
    jwks_uri: str
    authorization_endpoint: str | None = None
    device_authorization_endpoint: str | None = None
    end_session_endpoint: str | None = None


@dataclass(frozen=True)
class DeviceAuthorization:
    """A started device login: show `user_code` and `verification_uri` to the person, then poll."""

    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    device_code: SecretStr
    interval: float
    expires_at: float


_discovered: dict[str, Discovery] = {}


def _http(http: httpx.AsyncClient | None) -> httpx.AsyncClient:
    return http if http is not None else httpx.AsyncClient(timeout=TIMEOUT)


async def discover(issuer: str, *, http: httpx.AsyncClient | None = None) -> Discovery:
    """The provider's endpoints (fetched once per issuer and process)."""
    issuer = issuer.rstrip("/")
    if issuer in _discovered:
        return _discovered[issuer]
    client = _http(http)
    try:
        response = await client.get(f"{issuer}/.well-known/openid-configuration")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
    except (httpx.HTTPError, ValueError) as error:
        raise TokenError(f"no OpenID discovery document at {issuer}: {error}") from error
    finally:
        if http is None:
            await client.aclose()
    if body.get("issuer", "").rstrip("/") != issuer:
        raise TokenError(f"the discovery document of {issuer} names another issuer: {body.get('issuer')!r}")
    found = Discovery(
        issuer=issuer,
        token_endpoint=body["token_endpoint"],
        jwks_uri=body["jwks_uri"],
        authorization_endpoint=body.get("authorization_endpoint"),
        device_authorization_endpoint=body.get("device_authorization_endpoint"),
        end_session_endpoint=body.get("end_session_endpoint"),
    )
    _discovered[issuer] = found
    return found


def _secret(value: str | SecretStr) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


async def _token_request(
    issuer: str,
    form: Mapping[str, str],
    *,
    what: str,
    auth: tuple[str | bytes, str | bytes] | None = None,
    http: httpx.AsyncClient | None = None,
) -> dict[str, Any]:
    endpoints = await discover(issuer, http=http)
    client = _http(http)
    try:
        if auth is None:
            response = await client.post(endpoints.token_endpoint, data=dict(form))
        else:
            response = await client.post(endpoints.token_endpoint, data=dict(form), auth=auth)
    except httpx.HTTPError as error:
        raise TokenError(f"{what}: the token endpoint of {issuer} did not answer: {error}") from error
    finally:
        if http is None:
            await client.aclose()
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        body = {}
    if response.status_code != httpx.codes.OK or "access_token" not in body:
        code = str(body.get("error", f"HTTP {response.status_code}"))
        description = str(body.get("error_description", ""))
        said = f"{code}: {description}" if description else code
        raise TokenError(f"{what}: {issuer} refused: {said}", error=code, description=description)
    return body


def _token_set(body: Mapping[str, Any]) -> TokenSet:
    def secret(name: str) -> SecretStr | None:
        value = body.get(name)
        return SecretStr(value) if isinstance(value, str) and value else None

    access = secret("access_token")
    assert access is not None  # noqa: S101 - _token_request checked it
    return TokenSet(
        access_token=access,
        expires_at=time.time() + float(body.get("expires_in", 60)),
        refresh_token=secret("refresh_token"),
        id_token=secret("id_token"),
        scope=str(body.get("scope", "")),
    )


async def password_token(
    issuer: str,
    client_id: str,
    username: str,
    password: str | SecretStr,
    *,
    scope: str = "openid",
    http: httpx.AsyncClient | None = None,
) -> TokenSet:
    """The resource owner password grant (Keycloak's Direct Access Grants) for a public client."""
    form = {
        "grant_type": "password",
        "client_id": client_id,
        "username": username,
        "password": _secret(password),
        "scope": scope,
    }
    what = f"password sign-in of user {username!r} through client {client_id!r}"
    return _token_set(await _token_request(issuer, form, what=what, http=http))


async def client_credentials_token(
    issuer: str,
    client_id: str,
    secret: str | SecretStr,
    *,
    scope: str | None = None,
    http: httpx.AsyncClient | None = None,
) -> TokenSet:
    """A service account's token (client credentials, the secret sent by HTTP Basic authentication)."""
    form = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    what = f"client credentials of {client_id!r}"
    body = await _token_request(issuer, form, what=what, auth=(client_id, _secret(secret)), http=http)
    return _token_set(body)


async def refresh(
    issuer: str,
    client_id: str,
    refresh_token: str | SecretStr,
    *,
    secret: str | SecretStr | None = None,
    http: httpx.AsyncClient | None = None,
) -> TokenSet:
    """New tokens for a refresh token (public clients send no secret)."""
    form = {"grant_type": "refresh_token", "refresh_token": _secret(refresh_token)}
    auth: tuple[str | bytes, str | bytes] | None = None
    if secret is None:
        form["client_id"] = client_id
    else:
        auth = (client_id, _secret(secret))
    what = f"refresh through client {client_id!r}"
    return _token_set(await _token_request(issuer, form, what=what, auth=auth, http=http))


async def start_device_login(
    issuer: str, client_id: str, *, scope: str = "openid", http: httpx.AsyncClient | None = None
) -> DeviceAuthorization:
    """Start the device flow: the code to show the person and where they enter it."""
    endpoints = await discover(issuer, http=http)
    if endpoints.device_authorization_endpoint is None:
        raise TokenError(f"{issuer} offers no device authorization endpoint")
    client = _http(http)
    try:
        response = await client.post(
            endpoints.device_authorization_endpoint, data={"client_id": client_id, "scope": scope}
        )
        body: dict[str, Any] = response.json()
    except (httpx.HTTPError, ValueError) as error:
        raise TokenError(
            f"device login through client {client_id!r}: {issuer} did not answer: {error}"
        ) from error
    finally:
        if http is None:
            await client.aclose()
    if response.status_code != httpx.codes.OK or "device_code" not in body:
        code = str(body.get("error", f"HTTP {response.status_code}"))
        description = str(body.get("error_description", ""))
        raise TokenError(
            f"device login through client {client_id!r}: {issuer} refused: {code}: {description}",
            error=code,
            description=description,
        )
    return DeviceAuthorization(
        user_code=body["user_code"],
        verification_uri=body["verification_uri"],
        verification_uri_complete=body.get("verification_uri_complete"),
        device_code=SecretStr(body["device_code"]),
        interval=float(body.get("interval", 5)),
        expires_at=time.time() + float(body.get("expires_in", 600)),
    )


async def poll_device_login(
    issuer: str,
    client_id: str,
    authorization: DeviceAuthorization,
    *,
    http: httpx.AsyncClient | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> TokenSet:
    """Poll the token endpoint at the given interval (longer on `slow_down`) until the person has signed
    in, refused, or the code expired."""
    interval = authorization.interval
    form = {
        "grant_type": DEVICE_GRANT,
        "client_id": client_id,
        "device_code": authorization.device_code.get_secret_value(),
    }
    what = f"device login through client {client_id!r}"
    while True:
        try:
            return _token_set(await _token_request(issuer, form, what=what, http=http))
        except TokenError as refused:
            if refused.error == "authorization_pending":
                pass
            elif refused.error == "slow_down":
                interval += SLOW_DOWN_STEP
            else:
                raise
        if time.time() + interval > authorization.expires_at:
            raise TokenError(
                f"{what}: the code expired before the sign-in was completed", error="expired_token"
            )
        await sleep(interval)


async def device_login(
    issuer: str,
    client_id: str,
    show: Callable[[DeviceAuthorization], Awaitable[None] | None],
    *,
    scope: str = "openid",
    http: httpx.AsyncClient | None = None,
) -> TokenSet:
    """The whole device flow: start, `show` the person the code and address, poll until signed in."""
    authorization = await start_device_login(issuer, client_id, scope=scope, http=http)
    shown = show(authorization)
    if shown is not None:
        await shown
    return await poll_device_login(issuer, client_id, authorization, http=http)
