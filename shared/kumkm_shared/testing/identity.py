"""The tests' real OpenID provider: one `EmbeddedIdentityProvider` per process, started on first use with
the demo realm (``deploy/keycloak/kumkm-realm.json``) and the test users (``tests/support/realm-test.json``),
stopped at interpreter exit (and by the pytest plugin at the end of the session).

    from kumkm_shared.testing.identity import identity

    headers = identity().headers("officer.bekasi")      # a real password grant through the provider
    token = identity().service_token("integrator-demo")  # client credentials

Passwords and client secrets come from the realm files. Tokens are cached until shortly before they
expire. Every call is synchronous and safe from any thread or event loop.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kumkm_shared.auth import client as oidc
from kumkm_shared.cli.signin import DemoRealm
from kumkm_shared.servers.oidc import DEFAULT_REALM, REPO_ROOT, EmbeddedIdentityProvider

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Sequence

    from kumkm_shared.auth.client import TokenSet

T = TypeVar("T")

TEST_REALM = REPO_ROOT / "tests" / "support" / "realm-test.json"
PASSWORD_CLIENT = "kumkm-cli"  # noqa: S105 - a client id: the client with direct access grants
RENEW_BEFORE = 30.0  # seconds before expiry a cached token is replaced


def _run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine in a worker thread with its own event loop (callable from a running loop too)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kumkm-identity") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


class TestIdentity:
    """The provider and the realm's credentials, with a token cache."""

    __test__ = False  # not a pytest test class

    def __init__(self, realms: Sequence[Path], data_dir: Path | None = None) -> None:
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="kumkm-identity-"))
        self.realms = tuple(realms)
        self.provider = EmbeddedIdentityProvider(self.data_dir, self.realms)
        self.passwords: dict[str, str] = {}
        self.secrets: dict[str, str] = {}
        for path in self.realms:
            self._read_realm(path)
        self._tokens: dict[tuple[str, str], TokenSet] = {}
        self._lock = threading.Lock()

    def _read_realm(self, path: Path) -> None:
        realm = DemoRealm.read(path)
        self.passwords.update({k: v.get_secret_value() for k, v in realm.passwords.items()})
        self.secrets.update({k: v.get_secret_value() for k, v in realm.secrets.items()})

    @property
    def issuer(self) -> str:
        return self.provider.issuer

    def start(self) -> None:
        self.provider.start()

    def stop(self) -> None:
        self.provider.stop()
        self._tokens.clear()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def token(self, username: str) -> str:
        """An access token of `username` (password grant through ``kumkm-cli``), cached."""
        key = username.lower()
        if key not in self.passwords:
            known = ", ".join(sorted(self.passwords))
            raise KeyError(f"no user {username!r} with a password in {self._realm_names()}; known: {known}")
        return self._cached(("user", key), lambda: self._password_grant(key))

    def service_token(self, client_id: str) -> str:
        """An access token of the service account of `client_id` (client credentials), cached."""
        if client_id not in self.secrets:
            raise KeyError(f"no confidential client {client_id!r} in {self._realm_names()}")
        secret = self.secrets[client_id]
        return self._cached(
            ("service", client_id),
            lambda: _run(lambda: oidc.client_credentials_token(self.issuer, client_id, secret)),
        )

    def headers(self, username: str) -> dict[str, str]:
        """The Authorization header of `username`."""
        return {"Authorization": f"Bearer {self.token(username)}"}

    def service_headers(self, client_id: str) -> dict[str, str]:
        """The Authorization header of the service account of `client_id`."""
        return {"Authorization": f"Bearer {self.service_token(client_id)}"}

    def rotate_keys(self) -> str:
        """Rotate the provider's signing key (see `EmbeddedIdentityProvider.rotate_keys`) and forget the
        cached tokens, so the next ones carry the new `kid`. Returns the new `kid`."""
        with self._lock:
            self.start()
            kid = self.provider.rotate_keys()
            self._tokens.clear()
            return kid

    def forget_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def _password_grant(self, username: str) -> TokenSet:
        password = self.passwords[username]
        return _run(lambda: oidc.password_token(self.issuer, PASSWORD_CLIENT, username, password))

    def _cached(self, key: tuple[str, str], fetch: Callable[[], TokenSet]) -> str:
        with self._lock:
            self.start()
            cached = self._tokens.get(key)
            if cached is None or cached.expires_within(RENEW_BEFORE):
                cached = self._tokens[key] = fetch()
            return cached.bearer

    def _realm_names(self) -> str:
        return ", ".join(str(path) for path in self.realms)

    def __repr__(self) -> str:
        return f"TestIdentity(issuer={self.issuer!r}, running={self.provider.running})"


_instance: TestIdentity | None = None
_instance_lock = threading.Lock()


def identity() -> TestIdentity:
    """The process's test provider (demo and test realms), started on first use."""
    global _instance  # noqa: PLW0603 - one provider per process
    with _instance_lock:
        if _instance is None:
            _instance = TestIdentity((DEFAULT_REALM, TEST_REALM))
            atexit.register(stop_identity)
        _instance.start()
        return _instance


def stop_identity() -> None:
    """Stop the process's test provider, if one was started (it starts again on the next `identity()`)."""
    global _instance  # noqa: PLW0603
    with _instance_lock:
        if _instance is not None:
            _instance.stop()
            _instance = None
