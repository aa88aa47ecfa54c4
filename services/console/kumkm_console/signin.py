"""Signing in: the OpenID Connect authorization code flow with PKCE (S256) against the configured issuer,
found through its discovery document. The ID token is verified (signature, issuer, audience = this client,
expiry, nonce) and so is the access token (``kumkm_shared.auth.verify.TokenVerifier``, as every service
verifies it): the console shows a person only what their verified roles and regions say.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx
import jwt
from pydantic import SecretStr

from kumkm_shared.auth import client as oidc
from kumkm_shared.auth.verify import InvalidToken, TokenVerifier

if TYPE_CHECKING:
    from kumkm_console.sessions import PendingSignIn
    from kumkm_console.settings import ConsoleSettings
    from kumkm_shared.origin import Actor

__all__ = ["SignInError", "SignInFlow", "SignedIn"]


class SignInError(Exception):
    """The sign-in failed; the message is safe to show (it never holds a token or a code)."""


class SignedIn:
    def __init__(self, actor: Actor, tokens: oidc.TokenSet, regions_claim: str) -> None:
        self.actor = actor
        self.tokens = tokens
        # The regions as the token writes them (the actor's scope holds them normalised): page defaults.
        claims = jwt.decode(tokens.bearer, options={"verify_signature": False})  # verified already
        raw = claims.get(regions_claim) or []
        self.regions = tuple(str(r) for r in ([raw] if isinstance(raw, str) else raw))


class SignInFlow:
    def __init__(self, settings: ConsoleSettings) -> None:
        self.settings = settings
        self.issuer = settings.issuer.rstrip("/")
        self.access = TokenVerifier(self.issuer, settings.audience)
        self.id_tokens = TokenVerifier(self.issuer, settings.client_id)

    @property
    def redirect_uri(self) -> str:
        return f"{self.settings.base_url}/auth/callback"

    def _secret(self) -> str | None:
        secret = self.settings.client_secret
        return None if secret is None else secret.get_secret_value()

    async def discovery(self) -> oidc.Discovery:
        try:
            return await oidc.discover(self.issuer)
        except oidc.TokenError as error:
            raise SignInError("the identity provider cannot be reached") from error

    async def authorization_url(self, pending: PendingSignIn) -> str:
        endpoints = await self.discovery()
        if endpoints.authorization_endpoint is None:
            raise SignInError("the identity provider has no authorization endpoint")
        query = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.settings.scope,
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": pending.challenge,
            "code_challenge_method": "S256",
        }
        return f"{endpoints.authorization_endpoint}?{urlencode(query)}"

    async def _token(self, form: dict[str, str]) -> oidc.TokenSet:
        endpoints = await self.discovery()
        secret = self._secret()
        auth = None if secret is None else (self.settings.client_id, secret)
        if secret is None:
            form = {**form, "client_id": self.settings.client_id}
        try:
            async with httpx.AsyncClient(timeout=self.settings.api_timeout) as http:
                if auth is None:
                    response = await http.post(endpoints.token_endpoint, data=form)
                else:
                    response = await http.post(endpoints.token_endpoint, data=form, auth=auth)
        except httpx.HTTPError as error:
            raise SignInError("the identity provider's token endpoint did not answer") from error
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            body = {}
        if response.status_code != httpx.codes.OK or not isinstance(body.get("access_token"), str):
            raise SignInError(f"the identity provider refused: {body.get('error', response.status_code)}")
        return oidc.TokenSet(
            access_token=SecretStr(body["access_token"]),
            expires_at=time.time() + float(body.get("expires_in", 60)),
            refresh_token=SecretStr(body["refresh_token"]) if body.get("refresh_token") else None,
            id_token=SecretStr(body["id_token"]) if body.get("id_token") else None,
            scope=str(body.get("scope", "")),
        )

    async def exchange(self, code: str, pending: PendingSignIn) -> SignedIn:
        """The code for tokens (with the PKCE verifier); both tokens verified."""
        tokens = await self._token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "code_verifier": pending.verifier,
            }
        )
        if tokens.id_token is None:
            raise SignInError("the identity provider sent no ID token")
        await self._check_id_token(tokens.id_token.get_secret_value(), pending.nonce)
        return SignedIn(await self.verify(tokens.bearer), tokens, self.access.claims.regions)

    async def _check_id_token(self, id_token: str, nonce: str) -> None:
        try:
            await self.id_tokens.verify(id_token)
        except InvalidToken as error:
            raise SignInError(f"the ID token is refused: {error.reason}") from error
        claims = jwt.decode(id_token, options={"verify_signature": False})  # verified just above
        if claims.get("nonce") != nonce:
            raise SignInError("the ID token is not for this sign-in (nonce)")

    async def verify(self, access_token: str) -> Actor:
        try:
            return await self.access.verify(access_token)
        except InvalidToken as error:
            raise SignInError(f"the access token is refused: {error.reason}") from error

    async def refresh(self, refresh_token: SecretStr) -> SignedIn:
        tokens = await self._token(
            {"grant_type": "refresh_token", "refresh_token": refresh_token.get_secret_value()}
        )
        return SignedIn(await self.verify(tokens.bearer), tokens, self.access.claims.regions)

    async def logout_url(self, id_token: SecretStr | None) -> str | None:
        endpoints = await self.discovery()
        if endpoints.end_session_endpoint is None:
            return None
        query = {"client_id": self.settings.client_id}
        if id_token is not None:
            query["id_token_hint"] = id_token.get_secret_value()
        return f"{endpoints.end_session_endpoint}?{urlencode(query)}"
