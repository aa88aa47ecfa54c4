"""The embedded OpenID provider of ``kumkm up`` and the tests: ``oidc_provider/provider.mjs`` (the npm
package oidc-provider on the machine's Node.js) run as a child process, configured from Keycloak realm
exports, so services verify its tokens exactly as they verify Keycloak's.

The signing keys (a JWKS with private keys, the first one signs) are made on the first start and kept in
the data folder; `EmbeddedIdentityProvider.rotate_keys` puts a new key first and keeps the old one second.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kumkm_shared.servers._process import (
    LOCALHOST,
    EmbeddedServer,
    free_port,
    kill_stale,
    port_accepts,
    wait_until_ready,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
PROVIDER_DIR = Path(__file__).resolve().parent / "oidc_provider"
REPO_ROOT = Path(__file__).resolve().parents[3]
# The realm that docker-compose's Keycloak imports: demo users, clients and the platform's claim mappers.
DEFAULT_REALM = REPO_ROOT / "deploy" / "keycloak" / "kumkm-realm.json"
KEYS_KEPT = 2  # the signing key and the one before it (tokens it signed stay valid until they expire)


class IdentityProviderSetupError(RuntimeError):
    """Node.js or the provider's npm packages are missing: the message names the install step."""


def node_binary() -> Path:
    """The `node` on PATH (Node.js 20 or later)."""
    found = shutil.which("node")
    if found is None:
        raise IdentityProviderSetupError(
            "node not found on PATH: the embedded OpenID provider runs on Node.js; "
            "install it with `apt-get install nodejs npm`, then run `make install`"
        )
    return Path(found)


def provider_script() -> Path:
    """provider.mjs, after checking that `make install` put its npm packages beside it."""
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
        raise IdentityProviderSetupError(
            f"the npm packages of the embedded OpenID provider are not installed in {PROVIDER_DIR}; "
            "run `make install` (it runs `npm ci` there)"
        )
    return PROVIDER_DIR / "provider.mjs"


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def new_signing_key() -> dict[str, str]:
    """A fresh RS256 private JWK; its `kid` is its RFC 7638 thumbprint."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_numbers()
    public = private.public_numbers
    members = {"e": _b64(public.e), "kty": "RSA", "n": _b64(public.n)}
    thumbprint = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    return {
        **members,
        "kid": base64.urlsafe_b64encode(thumbprint).rstrip(b"=").decode(),
        "alg": "RS256",
        "use": "sig",
        "d": _b64(private.d),
        "p": _b64(private.p),
        "q": _b64(private.q),
        "dp": _b64(private.dmp1),
        "dq": _b64(private.dmq1),
        "qi": _b64(private.iqmp),
    }


class EmbeddedIdentityProvider(EmbeddedServer):
    """The OpenID provider on a local port (free unless given), issuer ``http://127.0.0.1:<port>``,
    its keys and log in `data_dir`, configured from `realms` (Keycloak realm exports, read in order;
    the repository's ``deploy/keycloak/kumkm-realm.json`` by default). With `issuer_path` (e.g.
    ``/realms/kumkm``, Keycloak's) the issuer and every endpoint are under that path."""

    log_name = "oidc-provider.log"
    start_timeout = START_TIMEOUT
    stop_timeout = STOP_TIMEOUT
    stop_signal = signal.SIGTERM

    def __init__(
        self, data_dir: Path, realms: Sequence[Path] = (), port: int | None = None, *, issuer_path: str = ""
    ) -> None:
        self.data_dir = data_dir.absolute()
        self.issuer_path = issuer_path.rstrip("/")
        self.realms = tuple(path.absolute() for path in realms) or (DEFAULT_REALM,)
        self.port = port or free_port()

    @property
    def issuer(self) -> str:
        return f"http://{LOCALHOST}:{self.port}{self.issuer_path}"

    @property
    def keys_path(self) -> Path:
        return self.data_dir / "oidc-keys.json"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "oidc-provider.pid"

    def signing_keys(self) -> list[dict[str, str]]:
        """The private JWKs, the signing one first (made on first use)."""
        if not self.keys_path.exists():
            self._write_keys([new_signing_key()])
        keys: list[dict[str, str]] = json.loads(self.keys_path.read_text())["keys"]
        return keys

    @property
    def signing_kid(self) -> str:
        return self.signing_keys()[0]["kid"]

    def _write_keys(self, keys: list[dict[str, str]]) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        temporary = self.keys_path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"keys": keys}, out)
        temporary.replace(self.keys_path)

    def rotate_keys(self) -> str:
        """Sign with a new key from now on, keep the previous one published (second), restart on the same
        port. Returns the new `kid`."""
        keys = [new_signing_key(), *self.signing_keys()][:KEYS_KEPT]
        self._write_keys(keys)
        if self.running:
            self.restart()
        return keys[0]["kid"]

    def _start(self, timeout: float) -> None:
        node, script = node_binary(), provider_script()
        for realm in self.realms:
            if not realm.is_file():
                raise FileNotFoundError(f"realm file {realm} not found")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.signing_keys()
        kill_stale(self.pid_path, executable_name=node.name, argument=str(self.keys_path))
        args = [str(node), str(script), "--port", str(self.port), "--issuer", self.issuer]
        args += ["--keys", str(self.keys_path)]
        for realm in self.realms:
            args += ["--realm", str(realm)]
        process = self._spawn(args)
        self.pid_path.write_text(f"{process.pid}\n")
        try:
            wait_until_ready("oidc-provider", process, self._ready, timeout=timeout, log=self.log_path)
        except BaseException:
            self.kill()
            raise

    def _stopped(self) -> None:
        self.pid_path.unlink(missing_ok=True)

    def discovery(self) -> dict[str, Any]:
        """The provider's ``/.well-known/openid-configuration``."""
        url = f"{self.issuer}/.well-known/openid-configuration"
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - a local http URL we built
            body: dict[str, Any] = json.load(response)
            return body

    def _ready(self) -> bool:
        if not port_accepts(self.port):
            return False
        try:
            return self.discovery().get("issuer") == self.issuer
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def __repr__(self) -> str:
        return f"EmbeddedIdentityProvider(issuer={self.issuer!r}, running={self.running})"
