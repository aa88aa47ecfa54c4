"""Verifying an access token: a JWT signed by the issuer's key, for our audience, in date.

PyJWT checks the signature, ``iss``, ``aud``, ``exp``, ``nbf`` and ``iat`` (with a small leeway); the keys
come from the issuer's JWKS, found through its discovery document. A token signed with a key we do not know
(an unknown ``kid``) makes us fetch the JWKS again, once, so a rotated key is accepted at once; the refetch is
rate-limited so a stream of made-up ``kid`` values cannot turn into a stream of requests to the issuer.
Only the algorithms configured are accepted: ``none`` and the HMAC family never are.
Rules: ``docs/rules/access.md``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import httpx
import jwt
import structlog

from kumkm_shared.auth.scope import RegionScope
from kumkm_shared.errors import Retry
from kumkm_shared.integrators import ORG_ID_PATTERN, valid_org_id
from kumkm_shared.origin import Actor

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["ClaimNames", "InvalidToken", "TokenVerifier"]

log = structlog.get_logger(__name__)

ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class InvalidToken(Exception):  # noqa: N818 - a verdict on the token, not a crash
    """The token is refused; ``reason`` is short and safe to show and log (it never holds the token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ClaimNames:
    """Where the token carries roles, region scopes, the organisation and the kind of actor (dotted paths
    such as ``realm_access.roles`` reach into nested claims)."""

    roles: str = "kumkm_roles"
    regions: str = "kumkm_regions"
    organisation: str = "kumkm_org"
    kind: str = "kumkm_kind"


def _claim(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _strings(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise InvalidToken(f"claim {name} must be a string or a list of strings")


@dataclass(frozen=True)
class _Key:
    key: Any  # a cryptography public key
    alg: str | None  # the JWK's own alg, when it names one


class TokenVerifier:
    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        jwks_url: str | None = None,
        claims: ClaimNames | None = None,
        leeway: float = 30.0,
        algorithms: Sequence[str] = ("RS256", "PS256", "ES256"),
        refetch_interval: float = 10.0,
        max_key_age: float = 3600.0,
        timeout: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        unsafe = set(algorithms) - ASYMMETRIC
        if unsafe:
            raise ValueError(f"only asymmetric signature algorithms may verify tokens, not {sorted(unsafe)}")
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.claims = claims or ClaimNames()
        self.leeway = leeway
        self.algorithms = tuple(algorithms)
        self._jwks_url = jwks_url
        self._refetch_interval = refetch_interval
        self._max_key_age = max_key_age
        self._timeout = timeout
        self._monotonic = monotonic
        self._keys: dict[str, _Key] = {}
        self._fetched_at: float | None = None
        self._refetched_at: float | None = None  # the last fetch caused by an unknown kid
        self._lock = asyncio.Lock()

    # -- keys -----------------------------------------------------------------------------------
    async def _fetch(self) -> None:
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as http:
                if self._jwks_url is None:
                    response = await http.get(f"{self.issuer}/.well-known/openid-configuration")
                    response.raise_for_status()
                    discovery = response.json()
                    if str(discovery.get("issuer", "")).rstrip("/") != self.issuer:
                        raise Retry(
                            "identity_provider_misconfigured",
                            "the identity provider's discovery document names another issuer",
                        )
                    self._jwks_url = str(discovery["jwks_uri"])
                response = await http.get(self._jwks_url)
                response.raise_for_status()
                document = response.json()
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.warning("identity provider keys unavailable", issuer=self.issuer, error=type(exc).__name__)
            raise Retry(
                "identity_provider_unavailable", "the identity provider's keys cannot be read now"
            ) from None
        keys: dict[str, _Key] = {}
        for jwk in document.get("keys", []):
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig" or "kid" not in jwk:
                continue
            try:
                keys[str(jwk["kid"])] = _Key(jwt.PyJWK(jwk).key, jwk.get("alg"))
            except jwt.PyJWTError:
                continue  # a key type or algorithm we do not use
        self._keys = keys
        self._fetched_at = self._monotonic()
        log.info("identity provider keys loaded", issuer=self.issuer, keys=len(keys))

    async def _key(self, kid: str) -> _Key:
        now = self._monotonic()
        stale = self._fetched_at is None or now - self._fetched_at > self._max_key_age
        key = None if stale else self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            now = self._monotonic()
            fetched = self._fetched_at
            if fetched is None:
                await self._fetch()
            elif now - fetched > self._max_key_age:
                await self._refresh_stale(now)
            elif kid not in self._keys and (
                self._refetched_at is None or now - self._refetched_at >= self._refetch_interval
            ):
                # An unknown key: fetch once more (a rotation), at most once per interval.
                self._refetched_at = now
                await self._fetch()
        key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("the token is signed with a key the issuer does not publish")
        return key

    async def _refresh_stale(self, now: float) -> None:
        """Keys older than their age: fetch them again, but keep verifying with the ones we hold while the
        issuer cannot be reached (trying again after ``refetch_interval``), rather than refusing everyone."""
        try:
            await self._fetch()
        except Retry:
            if not self._keys:
                raise
            self._fetched_at = now - self._max_key_age + self._refetch_interval

    # -- tokens ---------------------------------------------------------------------------------
    async def verify(self, token: str) -> Actor:  # noqa: C901 - one except per reason a token is refused
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("the token is not a signed JWT") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise InvalidToken(f"the token's algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the token names no signing key (kid)")
        key = await self._key(kid)
        if key.alg is not None and key.alg != alg:
            raise InvalidToken("the token's algorithm does not match its key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "sub", "aud"], "verify_nbf": True},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken(f"the token is not for audience {self.audience!r}") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("the token is from another issuer") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("the token's signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"the token has no {exc.claim} claim") from None
        except jwt.PyJWTError:
            raise InvalidToken("the token is invalid") from None
        if claims.get("typ") not in (None, "Bearer", "at+jwt") or str(header.get("typ", "")).lower() in {
            "id+jwt",
            "logout+jwt",
        }:
            raise InvalidToken("the token is not an access token")
        return self.actor(claims)

    def actor(self, claims: dict[str, Any]) -> Actor:
        names = self.claims
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("the token has no subject")
        roles = frozenset(_strings(_claim(claims, names.roles), names.roles))
        try:
            scope = RegionScope.parse(_strings(_claim(claims, names.regions), names.regions))
        except (ValueError, TypeError) as exc:
            raise InvalidToken(f"claim {names.regions}: {exc}") from None
        organisation = _claim(claims, names.organisation)
        if isinstance(organisation, list) and len(organisation) == 1:
            organisation = organisation[0]
        if organisation is not None and not isinstance(organisation, str):
            raise InvalidToken(f"claim {names.organisation} must be a string")
        if organisation is not None and not valid_org_id(organisation):
            # It keys the organisation's mandate (a KV key) and is a subject token: never anything else.
            raise InvalidToken(f"claim {names.organisation} is not an organisation id ({ORG_ID_PATTERN})")
        kind: Literal["person", "service"] = (
            "service" if _claim(claims, names.kind) == "service" else "person"
        )
        name = claims.get("preferred_username") or claims.get("name")
        return Actor(
            subject,
            kind=kind,
            roles=roles,
            name=name if isinstance(name, str) else None,
            organisation=organisation,
            scope=scope,
        )
