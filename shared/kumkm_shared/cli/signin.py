"""Signing the command line in: ``kumkm login``, ``kumkm logout``, ``kumkm token`` and the bearer token every
service call sends.

A login is the token set of the person who signed in (access and refresh token, expiry, issuer), kept in
``login.json`` with mode 0600: in the data folder when it exists, else in ``~/.config/kumkm/``. It is renewed
with its refresh token shortly before it expires. Every token comes from the provider (the device code grant;
in embedded mode, ``--as USER`` uses the password grant with the demo user's password from the realm file
``kumkm up`` configured the provider with). Tokens are `pydantic.SecretStr` until they go into a header or
are printed by ``kumkm token``.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from kumkm_shared.auth import client as oidc
from kumkm_shared.cli.runinfo import DEFAULT_DATA_DIR, RunInfo, SystemNotFoundError, find_system

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

    from kumkm_shared.auth.client import TokenSet

CLI_CLIENT = "kumkm-cli"
LOGIN_FILE = "login.json"
RENEW_BEFORE = 60.0  # seconds before expiry a stored access token is renewed with its refresh token
FILE_MODE = 0o600
SIGN_IN_HINT = "sign in first: kumkm login"


class SignInError(RuntimeError):
    """Signing in cannot go on: the message says why and what to do (never a token or a password)."""


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/kumkm``, by default ``~/.config/kumkm``."""
    base = os.environ.get("XDG_CONFIG_HOME")
    return (Path(base) if base else Path.home() / ".config") / "kumkm"


def _candidates(data_dir: Path | None) -> Iterator[Path]:
    yield (data_dir or DEFAULT_DATA_DIR) / LOGIN_FILE
    yield config_dir() / LOGIN_FILE


def login_path(data_dir: Path | None) -> Path:
    """Where a new login is kept: the data folder when it exists, else the user's config folder."""
    directory = data_dir or DEFAULT_DATA_DIR
    return directory / LOGIN_FILE if directory.is_dir() else config_dir() / LOGIN_FILE


def find_login(data_dir: Path | None) -> Path | None:
    """The login file in use: the data folder's, else the config folder's; None when neither exists."""
    return next((path for path in _candidates(data_dir) if path.is_file()), None)


def claims_of(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified: only to name who signed in (services verify every token)."""
    try:
        payload = token.split(".")[1]
        decoded: Any = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return decoded if isinstance(decoded, dict) else {}


@dataclass(frozen=True)
class StoredLogin:
    """The token set of a login, as kept in ``login.json``."""

    issuer: str
    client_id: str
    access_token: SecretStr
    expires_at: float
    refresh_token: SecretStr | None = None
    username: str | None = None

    @classmethod
    def of(cls, issuer: str, client_id: str, tokens: TokenSet) -> StoredLogin:
        claims = claims_of(tokens.bearer)
        name = claims.get("preferred_username") or claims.get("sub")
        return cls(
            issuer=issuer.rstrip("/"),
            client_id=client_id,
            access_token=tokens.access_token,
            expires_at=tokens.expires_at,
            refresh_token=tokens.refresh_token,
            username=str(name) if name else None,
        )

    def expires_within(self, seconds: float) -> bool:
        return time.time() + seconds >= self.expires_at

    def to_json(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "client_id": self.client_id,
            "username": self.username,
            "expires_at": self.expires_at,
            "access_token": self.access_token.get_secret_value(),
            "refresh_token": self.refresh_token.get_secret_value() if self.refresh_token else None,
        }

    @classmethod
    def from_json(cls, body: Any, path: Path) -> StoredLogin:
        try:
            refresh = body.get("refresh_token")
            return cls(
                issuer=str(body["issuer"]),
                client_id=str(body["client_id"]),
                access_token=SecretStr(str(body["access_token"])),
                expires_at=float(body["expires_at"]),
                refresh_token=SecretStr(str(refresh)) if refresh else None,
                username=body.get("username"),
            )
        except (AttributeError, KeyError, TypeError, ValueError):
            raise SignInError(f"{path} is not a login written by `kumkm login`; {SIGN_IN_HINT}") from None


def save_login(path: Path, login: StoredLogin) -> Path:
    """Write the login readable by its owner only (0600), replacing any earlier one atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(login.to_json(), out)
        temporary.chmod(FILE_MODE)  # whatever the umask did
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def load_login(path: Path) -> StoredLogin:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise SignInError(f"cannot read the login in {path} ({error}); {SIGN_IN_HINT}") from None
    return StoredLogin.from_json(body, path)


def remove_logins(data_dir: Path | None) -> list[Path]:
    """``kumkm logout``: delete the login files (the data folder's and the config folder's)."""
    removed = []
    for path in _candidates(data_dir):
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed


async def stored_token(data_dir: Path | None, *, http: httpx.AsyncClient | None = None) -> str | None:
    """The stored login's access token, renewed first when it expires within `RENEW_BEFORE` seconds.

    None without a login. A login that expired and cannot be renewed is a `SignInError`.
    """
    path = find_login(data_dir)
    if path is None:
        return None
    login = load_login(path)
    if not login.expires_within(RENEW_BEFORE):
        return login.access_token.get_secret_value()
    if login.refresh_token is None:
        if login.expires_within(0):
            raise SignInError(f"the sign-in of {login.username or 'this login'} expired; {SIGN_IN_HINT}")
        return login.access_token.get_secret_value()
    try:
        tokens = await oidc.refresh(login.issuer, login.client_id, login.refresh_token, http=http)
    except oidc.TokenError as refused:
        who = login.username or "this login"
        raise SignInError(f"the sign-in of {who} could not be renewed ({refused}); {SIGN_IN_HINT}") from None
    renewed = StoredLogin.of(login.issuer, login.client_id, tokens)
    if renewed.refresh_token is None:  # a provider that does not rotate refresh tokens keeps the old one
        renewed = dataclasses.replace(renewed, refresh_token=login.refresh_token)
    save_login(path, renewed)
    return renewed.access_token.get_secret_value()


def _run_info(data_dir: Path | None) -> RunInfo | None:
    directory = data_dir or DEFAULT_DATA_DIR
    if (directory / "run.json").is_file():
        return RunInfo.read(directory)
    with contextlib.suppress(SystemNotFoundError):
        return find_system(data_dir)
    return None


def resolve_issuer(issuer: str | None, data_dir: Path | None) -> str:
    """The issuer to sign in at: ``--issuer``, else ``KUMKM_AUTH_ISSUER``, else the running system's."""
    if issuer:
        return issuer.rstrip("/")
    from_env = os.environ.get("KUMKM_AUTH_ISSUER")
    if from_env:
        return from_env.rstrip("/")
    info = _run_info(data_dir)
    if info is not None and info.auth_issuer:
        return info.auth_issuer.rstrip("/")
    where = data_dir or DEFAULT_DATA_DIR
    raise SignInError(
        f"no issuer to sign in at: pass --issuer, set KUMKM_AUTH_ISSUER, or start the system with "
        f"`kumkm up --data-dir {where}`"
    )


@dataclass(frozen=True)
class RealmUser:
    username: str
    roles: tuple[str, ...]
    regions: tuple[str, ...]
    organisation: str | None
    service_account_of: str | None = None


@dataclass
class DemoRealm:
    """A realm file's users with passwords and clients with secrets (for embedded mode's ``--as``)."""

    path: Path
    users: list[RealmUser] = field(default_factory=list)
    passwords: dict[str, SecretStr] = field(default_factory=dict)
    secrets: dict[str, SecretStr] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> DemoRealm:
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as error:
            raise SignInError(f"cannot read the realm file {path}: {error}") from None
        realm = cls(path)
        for user in body.get("users", []):
            attributes = user.get("attributes") or {}
            orgs = attributes.get("kumkm_org") or [None]
            name = str(user["username"]).lower()
            realm.users.append(
                RealmUser(
                    username=name,
                    roles=tuple(user.get("realmRoles", [])),
                    regions=tuple(attributes.get("kumkm_regions", [])),
                    organisation=orgs[0],
                    service_account_of=user.get("serviceAccountClientId"),
                )
            )
            for credential in user.get("credentials", []):
                if credential.get("type") == "password" and "value" in credential:
                    realm.passwords[name] = SecretStr(credential["value"])
        for client in body.get("clients", []):
            if client.get("secret") and not client.get("publicClient"):
                realm.secrets[client["clientId"]] = SecretStr(client["secret"])
        return realm

    def people(self) -> list[RealmUser]:
        return [user for user in self.users if user.username in self.passwords]

    def service_accounts(self) -> list[RealmUser]:
        return [user for user in self.users if user.service_account_of in self.secrets]

    def known(self) -> str:
        return ", ".join([*sorted(self.passwords), *sorted(self.secrets)])


def embedded_realm(issuer: str, data_dir: Path | None) -> DemoRealm:
    """The realm of the provider `kumkm up` started, when `issuer` is that provider's; else a `SignInError`
    (``--as`` signs in without a prompt only there: anywhere else a person signs in themselves)."""
    info = _run_info(data_dir)
    if info is None or not info.auth_realm or not info.auth_issuer:
        raise SignInError(
            "--as works only with the embedded provider that `kumkm up` started (its issuer and realm are "
            f"in run.json, none in {data_dir or DEFAULT_DATA_DIR}); sign in with `kumkm login` instead"
        )
    if info.auth_issuer.rstrip("/") != issuer.rstrip("/"):
        raise SignInError(
            f"--as works only with the embedded provider at {info.auth_issuer}, not at {issuer}; "
            "sign in with `kumkm login` instead"
        )
    return DemoRealm.read(Path(info.auth_realm))


async def demo_tokens(
    issuer: str,
    realm: DemoRealm,
    name: str,
    *,
    client_id: str = CLI_CLIENT,
    http: httpx.AsyncClient | None = None,
) -> TokenSet:
    """Tokens of a demo user (the password grant through `client_id`) or of a service account (client
    credentials of its client), from the provider, with the credentials in `realm`."""
    key = name.lower()
    if key in realm.passwords:
        return await oidc.password_token(issuer, client_id, key, realm.passwords[key], http=http)
    if name in realm.secrets:
        return await oidc.client_credentials_token(issuer, name, realm.secrets[name], http=http)
    raise SignInError(f"no demo user or service account {name!r} in {realm.path}; known: {realm.known()}")
