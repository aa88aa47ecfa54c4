"""The NATS identity of one KUMKM installation, in a directory: keys, account JWTs, platform creds.

Layout (``kumkm nats init DIR`` creates what is missing and never replaces a key):

- ``keys/`` (0700): ``operator.nk``, ``account-SYS.nk``, ``account-KUMKM.nk``, ``account-INTEGRATORS.nk``
  and ``signing/<public>.nk``, every seed 0600. Whoever holds them can mint users: keep the directory on
  the operator's machine or in a secret manager, never on a service's host.
- ``jwt/``: ``operator.jwt``, ``SYS.jwt``, ``KUMKM.jwt``, ``INTEGRATORS.jwt``, the current JWTs (public,
  but an account JWT is also the state: its ``signing_keys``, ``exports``/``imports`` and ``revocations``).
- ``creds/<user>.creds`` (0600): the platform users (``permissions.PLATFORM_USERS``), one per service and
  tool. Mount each into its own container only.
- ``server/auth.conf``: what nats-server needs (``operator``, ``system_account``, ``resolver_preload``);
  public, included by deploy/nats/nats-server.conf.

Two application accounts. KUMKM (the platform: services, tools, JetStream) has one plain signing key (the
platform users) and exports every integrator subject ``<type>.*`` as a *service*
(``permissions.integrator_exports``). INTEGRATORS (the organisations; no JetStream of its own) has one
``user_scope`` signing key per integrator role (``permissions.role_template``) and the ``revocations``, and
imports those services from KUMKM. An organisation's publish crosses into KUMKM through the import, and its
reply subject is replaced by a private ``_R_`` subject that the server maps back into INTEGRATORS: the
stream's PubAck reaches the organisation's inbox, and a reply subject it chooses (``$KV.KUMKM_MANDATES.x``,
a stream's subject) can only ever address the INTEGRATORS account, where nothing listens. Every change is
re-signed with the operator key, written here and then pushed to the servers
(``kumkm_shared.natsauth.push``).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kumkm_shared.integrators import IntegratorRole, org_id_problem
from kumkm_shared.natsauth.jwt import creds_text, decode, encode, new_key, public_key
from kumkm_shared.natsauth.permissions import (
    PLATFORM_USERS,
    Permissions,
    integrator_exports,
    role_template,
)

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["ACCOUNTS", "INTEGRATORS", "PLATFORM", "AuthDir", "AuthDirError", "IssuedUser"]

PLATFORM = "KUMKM"  # the services, the tools and JetStream
INTEGRATORS = "INTEGRATORS"  # the integrator organisations' users, each signed by its role's scoped key
ACCOUNTS = ("SYS", PLATFORM, INTEGRATORS)
NO_LIMIT = -1
_ACCOUNT_LIMITS: dict[str, Any] = {
    "subs": NO_LIMIT,
    "data": NO_LIMIT,
    "payload": NO_LIMIT,
    "imports": NO_LIMIT,
    "exports": NO_LIMIT,
    "wildcards": True,
    "conn": NO_LIMIT,
    "leaf": NO_LIMIT,
}
# JetStream is enabled for an account whose storage limits are not zero.
_JETSTREAM_LIMITS: dict[str, Any] = {
    "mem_storage": NO_LIMIT,
    "disk_storage": NO_LIMIT,
    "streams": NO_LIMIT,
    "consumer": NO_LIMIT,
    "max_ack_pending": NO_LIMIT,
}
_USER_LIMITS: dict[str, Any] = {"subs": NO_LIMIT, "data": NO_LIMIT, "payload": NO_LIMIT}


class AuthDirError(RuntimeError):
    """The directory is missing, incomplete, or refuses the change (e.g. retiring a role's only key)."""


@dataclass(frozen=True)
class IssuedUser:
    creds: str  # the .creds text: shown once, never stored here
    public_key: str
    signing_key: str


def _write_secret(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    path.chmod(0o600)


def _write_public(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


class AuthDir:
    """One installation's operator, accounts, signing keys and platform users' creds."""

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()

    # ---- paths ---------------------------------------------------------------------------------------

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def jwt_dir(self) -> Path:
        return self.root / "jwt"

    @property
    def creds_dir(self) -> Path:
        return self.root / "creds"

    @property
    def server_dir(self) -> Path:
        return self.root / "server"

    @property
    def server_config(self) -> Path:
        return self.server_dir / "auth.conf"

    def creds_path(self, user: str) -> Path:
        return self.creds_dir / f"{user}.creds"

    def _seed_path(self, name: str) -> Path:
        return self.keys_dir / f"{name}.nk"

    def _signing_seed_path(self, public: str) -> Path:
        return self.keys_dir / "signing" / f"{public}.nk"

    def _jwt_path(self, name: str) -> Path:
        return self.jwt_dir / f"{name}.jwt"

    # ---- creation ------------------------------------------------------------------------------------

    @classmethod
    def init(cls, root: Path) -> AuthDir:
        """Create what is missing (idempotent): keys, JWTs, platform creds, server config."""
        auth = cls(root)
        auth.root.mkdir(parents=True, exist_ok=True)
        auth.keys_dir.mkdir(exist_ok=True, mode=0o700)
        auth.keys_dir.chmod(0o700)
        for name in ("operator", *(f"account-{a}" for a in ACCOUNTS)):
            if not auth._seed_path(name).exists():
                _write_secret(auth._seed_path(name), new_key("operator" if name == "operator" else "account"))
        operator_jwt = encode(
            "operator",
            auth.public("operator"),
            "KUMKM",
            {"system_account": auth.account_key("SYS")},
            signer=auth._seed("operator"),
        )
        if not auth._jwt_path("operator").exists():
            _write_public(auth._jwt_path("operator"), operator_jwt)
        if not auth._jwt_path("SYS").exists():
            _write_public(auth._jwt_path("SYS"), auth._sign_account("SYS", {"limits": dict(_ACCOUNT_LIMITS)}))
        auth._init_platform()
        auth._init_integrators()
        for user in PLATFORM_USERS:
            if not auth.creds_path(user).exists():
                _write_secret(auth.creds_path(user), auth._platform_creds(user).encode())
        auth._write_server_config()
        return auth

    def _init_platform(self) -> None:
        """KUMKM: created, or upgraded (the exports; no integrator role's key any more)."""
        if not self._jwt_path(PLATFORM).exists():
            self._store_account(PLATFORM, [self._new_signing_key()], {})
        elif self._claims(PLATFORM).get("exports") != self._platform_exports() or any(
            isinstance(k, dict) for k in self._claims(PLATFORM).get("signing_keys", [])
        ):
            # A directory from before INTEGRATORS: the exports are added and the integrator roles' keys
            # leave KUMKM (their users could aim PubAcks at the platform); re-issue the organisations.
            claims = self._claims(PLATFORM)
            plain = [k for k in claims.get("signing_keys", []) if isinstance(k, str)]
            self._store_account(PLATFORM, plain, dict(claims.get("revocations") or {}))

    def _init_integrators(self) -> None:
        """INTEGRATORS: created, or completed (a new role's key, imports that follow the exports)."""
        if not self._jwt_path(INTEGRATORS).exists():
            scoped = [self._scoped_key(role, self._new_signing_key()) for role in IntegratorRole]
            self._store_account(INTEGRATORS, scoped, {})
        else:
            # A new event type or role since: the imports follow the exports, every role has a key.
            claims = self._claims(INTEGRATORS)
            signing = list(claims.get("signing_keys", []))
            roles = {k.get("role") for k in signing if isinstance(k, dict)}
            missing = [r for r in IntegratorRole if str(r) not in roles]
            if missing or claims.get("imports") != self._integrator_imports():
                signing += [self._scoped_key(role, self._new_signing_key()) for role in missing]
                self._store_account(INTEGRATORS, signing, dict(claims.get("revocations") or {}))

    def exists(self) -> bool:
        return all(self._jwt_path(a).is_file() for a in ACCOUNTS) and self._seed_path("operator").is_file()

    def _require(self) -> None:
        if not self.exists():
            raise AuthDirError(f"no NATS auth directory at {self.root}: run `kumkm nats init {self.root}`")

    # ---- keys and JWTs -------------------------------------------------------------------------------

    def _seed(self, name: str) -> bytes:
        return self._seed_path(name).read_bytes().strip()

    def public(self, name: str) -> str:
        return public_key(self._seed(name))

    def account_key(self, account: str) -> str:
        return self.public(f"account-{account}")

    def _new_signing_key(self) -> str:
        seed = new_key("account")
        public = public_key(seed)
        _write_secret(self._signing_seed_path(public), seed)
        return public

    def _signing_seed(self, public: str) -> bytes:
        path = self._signing_seed_path(public)
        if not path.is_file():
            raise AuthDirError(f"the seed of signing key {public} is not in {self.keys_dir}")
        return path.read_bytes().strip()

    @staticmethod
    def _scoped_key(role: IntegratorRole, key: str) -> dict[str, Any]:
        return {
            "kind": "user_scope",
            "key": key,
            "role": str(role),
            "template": {**role_template(role), **_USER_LIMITS},
            "description": f"integrator role {role}: users named after their organisation",
        }

    def operator_jwt(self) -> str:
        self._require()
        return self._jwt_path("operator").read_text().strip()

    def account_jwt(self, account: str) -> str:
        self._require()
        return self._jwt_path(account).read_text().strip()

    def _claims(self, account: str) -> dict[str, Any]:
        """The account JWT's nats claims, after checking it is the operator's JWT of this account."""
        token = decode(self._jwt_path(account).read_text().strip())
        if token.issuer != self.public("operator"):
            raise AuthDirError(f"{self._jwt_path(account)} is not signed by this directory's operator")
        if token.subject != self.account_key(account) or token.kind != "account":
            raise AuthDirError(f"{self._jwt_path(account)} is not the JWT of account {account}")
        return token.nats

    def _platform_exports(self) -> list[dict[str, Any]]:
        return integrator_exports()

    def _integrator_imports(self) -> list[dict[str, Any]]:
        platform = self.account_key(PLATFORM)
        return [
            {"name": e["name"], "type": "service", "account": platform, "subject": e["subject"]}
            for e in integrator_exports()
        ]

    def _sign_account(self, account: str, nats: dict[str, Any], *, previous: str | None = None) -> str:
        # The resolver keeps the newer of two JWTs by issue time: never issue two in the same second.
        issued_at = int(time.time())
        if previous is not None:
            issued_at = max(issued_at, decode(previous, verify=False).issued_at + 1)
        return encode(
            "account",
            self.account_key(account),
            account,
            nats,
            signer=self._seed("operator"),
            issued_at=issued_at,
        )

    def _store_account(self, account: str, signing_keys: list[Any], revocations: dict[str, int]) -> str:
        """Sign and write KUMKM (JetStream, the exports) or INTEGRATORS (the imports, no JetStream)."""
        path = self._jwt_path(account)
        previous = path.read_text().strip() if path.exists() else None
        nats: dict[str, Any] = {
            "signing_keys": signing_keys,
            "default_permissions": {"pub": {}, "sub": {}},
        }
        if account == PLATFORM:
            nats["limits"] = {**_ACCOUNT_LIMITS, **_JETSTREAM_LIMITS}
            nats["exports"] = self._platform_exports()
        else:
            nats["limits"] = dict(_ACCOUNT_LIMITS)
            nats["imports"] = self._integrator_imports()
        if revocations:
            nats["revocations"] = revocations
        token = self._sign_account(account, nats, previous=previous)
        _write_public(path, token)
        if previous is not None:
            self._write_server_config()
        return token

    def _write_server_config(self) -> None:
        lines = [
            "# Generated by `kumkm nats init` (kumkm_shared.natsauth): the operator, the system account and",
            "# the account JWTs the resolver starts with. Public: no seed here. Re-written on every change.",
            f"operator: {json.dumps(self._jwt_path('operator').read_text().strip())}",
            f"system_account: {json.dumps(self.account_key('SYS'))}",
            "resolver_preload: {",
            *(
                f"  {self.account_key(a)}: {json.dumps(self._jwt_path(a).read_text().strip())}"
                for a in ACCOUNTS
                if self._jwt_path(a).exists()
            ),
            "}",
        ]
        _write_public(self.server_config, "\n".join(lines) + "\n")

    # ---- users ---------------------------------------------------------------------------------------

    def platform_signing_key(self) -> str:
        keys = [k for k in self._claims(PLATFORM).get("signing_keys", []) if isinstance(k, str)]
        if not keys:
            raise AuthDirError("the KUMKM account has no plain signing key")
        return keys[-1]

    def role_keys(self, role: IntegratorRole) -> list[str]:
        """The role's scoped signing keys, oldest first (the last signs new users)."""
        return [
            k["key"]
            for k in self._claims(INTEGRATORS).get("signing_keys", [])
            if isinstance(k, dict) and k.get("role") == str(role)
        ]

    def _user_jwt(
        self, name: str, permissions: Permissions | None, *, account: str, signer: bytes, user_seed: bytes
    ) -> str:
        # A user of a scoped key must carry no permissions and no limits at all (not even "unlimited"):
        # the server refuses it otherwise, and applies the key's template instead.
        nats: dict[str, Any] = (
            {} if permissions is None else {"pub": {}, "sub": {}, **permissions, **_USER_LIMITS}
        )
        account_key = self.account_key(account)
        if public_key(signer) != account_key:
            nats["issuer_account"] = account_key
        return encode("user", public_key(user_seed), name, nats, signer=signer)

    def _platform_creds(self, user: str) -> str:
        account, permissions = PLATFORM_USERS[user]
        signer = (
            self._seed("account-SYS") if account == "SYS" else self._signing_seed(self.platform_signing_key())
        )
        seed = new_key("user")
        token = self._user_jwt(user, permissions, account=account, signer=signer, user_seed=seed)
        return creds_text(token, seed)

    def issue_integrator(self, organisation: str, role: IntegratorRole) -> IssuedUser:
        """A new user for ``organisation``, signed with ``role``'s current scoped key (name = the org).

        The server gives it the role's template permissions; nothing about it is stored here.
        """
        problem = org_id_problem(organisation)
        if problem is not None:
            raise AuthDirError(problem)
        self._require()
        keys = self.role_keys(role)
        if not keys:
            raise AuthDirError(f"the {INTEGRATORS} account has no signing key for role {role}")
        signer = self._signing_seed(keys[-1])
        seed = new_key("user")
        token = self._user_jwt(organisation, None, account=INTEGRATORS, signer=signer, user_seed=seed)
        return IssuedUser(creds=creds_text(token, seed), public_key=public_key(seed), signing_key=keys[-1])

    # ---- account changes (each returns the new account JWT, to push) ---------------------------------

    def revoke(self, user_keys: list[str] | tuple[str, ...]) -> str:
        """Revoke every JWT issued to these (integrator) user keys until now; returns the INTEGRATORS JWT."""
        claims = self._claims(INTEGRATORS)
        revocations = dict(claims.get("revocations") or {})
        now = int(time.time())
        for key in user_keys:
            if not key.startswith("U"):
                raise AuthDirError(f"not a user public key: {key!r}")
            revocations[key] = now
        return self._store_account(INTEGRATORS, list(claims.get("signing_keys", [])), revocations)

    def rotate_role_key(self, role: IntegratorRole) -> tuple[str, str]:
        """Add a new scoped key for ``role`` (it signs users from now on); returns (key, account JWT).
        Users signed by the older keys keep working until ``retire_role_key``."""
        claims = self._claims(INTEGRATORS)
        key = self._new_signing_key()
        signing = [*claims.get("signing_keys", []), self._scoped_key(role, key)]
        return key, self._store_account(INTEGRATORS, signing, dict(claims.get("revocations") or {}))

    def retire_role_key(self, role: IntegratorRole, key: str | None = None) -> tuple[str, str]:
        """Remove a scoped key of ``role`` (default: its oldest); every user it signed is cut off.
        Refuses to remove the role's only key. Returns (retired key, account JWT)."""
        keys = self.role_keys(role)
        if len(keys) < 2:  # noqa: PLR2004 - one to keep, one to retire
            raise AuthDirError(
                f"role {role} has one signing key: rotate first (`kumkm nats rotate-key {role}`)"
            )
        retired = key or keys[0]
        if retired not in keys:
            raise AuthDirError(f"{retired} is not a signing key of role {role}")
        if retired == keys[-1]:
            raise AuthDirError(
                f"{retired} is the key that signs new users of role {role}: retire an older one"
            )
        claims = self._claims(INTEGRATORS)
        signing = [
            k for k in claims.get("signing_keys", []) if not (isinstance(k, dict) and k.get("key") == retired)
        ]
        token = self._store_account(INTEGRATORS, signing, dict(claims.get("revocations") or {}))
        self._signing_seed_path(retired).unlink(missing_ok=True)
        return retired, token

    def revocations(self) -> dict[str, int]:
        return dict(self._claims(INTEGRATORS).get("revocations") or {})
