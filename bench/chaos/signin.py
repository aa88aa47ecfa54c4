"""Sign-in for the benchmarks and the fault suite: the embedded OpenID provider with the demo realm, and real
tokens from it for the demo users and the integrator's service account.

The services verify these tokens exactly as they verify Keycloak's (``KUMKM_AUTH_ISSUER`` is the provider's
issuer). Who acts is fixed per kind of work, as the platform's roles have it:

- ``officer.bekasi``, ``supervisor.bekasi``, ``supervisor.national``: loans decisions (two different
  supervisors for an approval that waits for its second one);
- ``curator.bekasi``: product curation;
- ``integrator-demo`` (client credentials): products, orders, order steps and catalog reads;
- ``operator``: ticks, contacts, resends.

Passwords and client secrets are read from the realm file (the demo realm's, never printed). Tokens are
cached and fetched again shortly before they expire (the demo realm's tokens live five minutes, the full
fault suite longer), so a long run never sends an expired token.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Self

import httpx

from kumkm_shared.auth import client as oidc
from kumkm_shared.cli.signin import DemoRealm
from kumkm_shared.servers.oidc import DEFAULT_REALM, EmbeddedIdentityProvider

if TYPE_CHECKING:
    from kumkm_shared.auth.client import TokenSet

PASSWORD_CLIENT = "kumkm-cli"  # noqa: S105 - a client id: the public client with direct access grants (the password grant)
INTEGRATOR = "integrator-demo"  # the integrator's service account (client credentials)
OFFICER = "officer.bekasi"
SUPERVISOR = "supervisor.bekasi"
SECOND_SUPERVISOR = "supervisor.national"
CURATOR = "curator.bekasi"
OPERATOR = "operator"
RENEW_BEFORE = 60.0  # seconds before its expiry a cached token is replaced
SIGN_IN_DEADLINE = 60.0  # seconds a sign-in is retried while the provider does not answer

# Who reads each service's resources in the workload (its ``Api.get`` calls).
READERS = {"loans": OFFICER, "catalog": INTEGRATOR, "notifications": OPERATOR}


class SignIn:
    """The provider (started by `start`, in ``data_dir``) and a token cache. `start` and `stop` block; the
    token methods are coroutines of the caller's event loop."""

    def __init__(self, data_dir: Path | None = None, realm: Path = DEFAULT_REALM) -> None:
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="kumkm-bench-oidc-"))
        self.provider = EmbeddedIdentityProvider(self.data_dir, (realm,))
        self.passwords: dict[str, str] = {}
        self.secrets: dict[str, str] = {}
        credentials = DemoRealm.read(realm)
        self.passwords.update({k: v.get_secret_value() for k, v in credentials.passwords.items()})
        self.secrets.update({k: v.get_secret_value() for k, v in credentials.secrets.items()})
        self._tokens: dict[str, TokenSet] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._http: httpx.AsyncClient | None = None

    @property
    def issuer(self) -> str:
        return self.provider.issuer

    def env(self) -> dict[str, str]:
        """The services' environment for this provider."""
        return {"KUMKM_AUTH_ISSUER": self.issuer, "KUMKM_AUTH_AUDIENCE": "kumkm"}

    def start(self) -> None:
        self.provider.start()

    def stop(self) -> None:
        self.provider.stop()
        self._tokens.clear()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        self._locks.clear()  # locks belong to the loop that made them

    async def bearer(self, who: str) -> str:
        """An access token of `who`: a demo user (password grant) or a service account (client
        credentials), from the cache while it has more than a minute left."""
        cached = self._tokens.get(who)
        if cached is not None and cached.expires_at - time.time() > RENEW_BEFORE:
            return cached.bearer
        lock = self._locks.setdefault(who, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(who)
            if cached is None or cached.expires_at - time.time() <= RENEW_BEFORE:
                cached = self._tokens[who] = await self._fetch_until(who)
            return cached.bearer

    async def _fetch_until(self, who: str) -> TokenSet:
        """Sign in, retrying while the provider does not answer or fails (the fault suite kills it), up to
        `SIGN_IN_DEADLINE`; a refusal (a wrong password, an unknown client) is raised at once."""
        start = time.monotonic()
        while True:
            try:
                return await self._fetch(who)
            except oidc.TokenError as exc:
                unavailable = not exc.error or exc.error.startswith("HTTP 5")
                if not unavailable or time.monotonic() - start > SIGN_IN_DEADLINE:
                    raise
            await asyncio.sleep(0.5)

    async def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.bearer(who)}"}

    async def _fetch(self, who: str) -> TokenSet:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=oidc.TIMEOUT)
        if who in self.secrets and who.lower() not in self.passwords:
            return await oidc.client_credentials_token(self.issuer, who, self.secrets[who], http=self._http)
        password = self.passwords.get(who.lower())
        if password is None:
            raise KeyError(f"no demo user or service account {who!r} in {self.provider.realms[0]}")
        return await oidc.password_token(self.issuer, PASSWORD_CLIENT, who.lower(), password, http=self._http)
