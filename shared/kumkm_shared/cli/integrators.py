"""``kumkm integrators add|list|revoke`` and ``kumkm nats init|push|rotate-key|retire-key``.

An integrator organisation gets its own NATS user (a .creds file, shown once) signed with its role's scoped
signing key, and a mandate in the ``KUMKM_MANDATES`` bucket (``kumkm_shared.mandates``). Revoking marks the
mandate revoked and pushes the organisation's user keys into the INTEGRATORS account's revocations: the server
closes its open connections at once and refuses new ones. deploy/README.md, "Integrator organisations".
"""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from kumkm_shared.cli.runinfo import DEFAULT_DATA_DIR, RunInfo, SystemNotFoundError, find_system
from kumkm_shared.integrators import ORG_ID_PATTERN, IntegratorRole, org_id_problem, valid_org_id
from kumkm_shared.mandates import ALL_PARTIES, MAX_PARTY_LENGTH, Grant, Mandate, MandateBook
from kumkm_shared.natsauth import ACCOUNTS, AuthDir, AuthDirError, decode
from kumkm_shared.natsauth.authdir import INTEGRATORS, PLATFORM
from kumkm_shared.natsauth.push import PushError, account_connections, push_account

if TYPE_CHECKING:
    from nats.aio.client import Client

integrators_app = typer.Typer(
    no_args_is_help=True, help="Integrator organisations: credentials and mandates."
)
nats_app = typer.Typer(no_args_is_help=True, help="The NATS operator, accounts and signing keys.")
console = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

DataDir = Annotated[Path, typer.Option("--data-dir", help="where run.json (and embedded server data) live")]
AuthDirOption = Annotated[
    Path | None,
    typer.Option(
        "--auth-dir",
        envvar="KUMKM_NATS_AUTH_DIR",
        show_envvar=True,
        help="the NATS auth directory (`kumkm nats init`); default: the one of run.json",
    ),
]
ROLES = ", ".join(r.value for r in IntegratorRole)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]{message}[/]", markup=True)
    return typer.Exit(code)


def _system(data_dir: Path) -> RunInfo | None:
    try:
        return find_system(data_dir)
    except SystemNotFoundError:
        return None


def _auth_dir(given: Path | None, info: RunInfo | None) -> AuthDir:
    root = given or (Path(info.nats_auth_dir) if info and info.nats_auth_dir else None)
    if root is None:
        raise _fail("--auth-dir: no NATS auth directory given (nor in run.json): see `kumkm nats init`")
    auth = AuthDir(root)
    if not auth.exists():
        raise _fail(f"--auth-dir: {root} is not a NATS auth directory: run `kumkm nats init {root}`")
    return auth


def _require_system(data_dir: Path) -> RunInfo:
    info = _system(data_dir)
    if info is None:
        raise _fail(
            f"no running system: set KUMKM_NATS_URL, or start one with `kumkm up --data-dir {data_dir}`", 3
        )
    return info


async def _connect(info: RunInfo) -> Client:
    import nats

    from kumkm_shared.cli.runinfo import nats_creds_file

    creds = nats_creds_file(info)
    options: dict[str, object] = {
        "name": "kumkm-integrators",
        "connect_timeout": 5,
        "max_reconnect_attempts": 3,
    }
    if creds is not None:
        options["user_credentials"] = str(creds)
    return await nats.connect(info.nats_url.split(","), **options)


def _operator_subject(data_dir: Path) -> str:
    """Who grants: the subject of the stored `kumkm login`, else the local user name."""
    from kumkm_shared.cli.signin import SignInError, claims_of, find_login, load_login

    path = find_login(data_dir)
    if path is not None:
        try:
            subject = claims_of(load_login(path).access_token.get_secret_value()).get("sub")
        except (SignInError, ValueError):
            subject = None
        if subject:
            return str(subject)
    return getpass.getuser()


def _write_creds(path: Path, text: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise _fail(f"--creds-out: {path} exists; choose a new file (creds are never overwritten)") from None
    except OSError as exc:
        raise _fail(f"--creds-out: cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


# ---- kumkm integrators ---------------------------------------------------------------------------------


def _add_input(
    organisation: str, role: str, party: list[str] | None, *, all_parties: bool
) -> tuple[IntegratorRole, tuple[str, ...]]:
    """The role and parties of `integrators add`, or exit 2 naming the option that is wrong."""
    problem = org_id_problem(organisation)
    if problem is not None:
        raise _fail(f"ORG: {problem}")
    try:
        chosen = IntegratorRole(role)
    except ValueError:
        raise _fail(f"--role: {role!r} is not a role; choose one of {ROLES}") from None
    parties = tuple(party or ())
    if all_parties == bool(parties):
        raise _fail("--party / --all-parties: give one or more --party, or --all-parties (not both)")
    for p in parties:
        if not p.strip() or len(p) > MAX_PARTY_LENGTH or p.strip() == ALL_PARTIES:
            raise _fail(
                f"--party: {p!r} is not a party "
                f"(1 to {MAX_PARTY_LENGTH} characters; --all-parties for every party)"
            )
    return chosen, parties


def _with_grant(
    organisation: str, current: Mandate | None, grant: Grant, name: str | None, granted_by: str
) -> Mandate:
    """A new mandate, or the organisation's active one with one more role."""
    if current is None or not current.active:
        return Mandate(organisation=organisation, grants=(grant,), name=name, granted_by=granted_by)
    mandate = current.with_grant(grant)
    return mandate.model_copy(update={"name": name}) if name else mandate


@integrators_app.command("add")
def add(
    organisation: Annotated[
        str, typer.Argument(metavar="ORG", help="the organisation id: lowercase letters, digits, hyphens")
    ],
    role: Annotated[str, typer.Option("--role", help=f"one of {ROLES}")],
    party: Annotated[
        list[str] | None, typer.Option("--party", help="a party it may act for (repeat for each)")
    ] = None,
    all_parties: Annotated[
        bool, typer.Option("--all-parties", help="every party of the role (a national channel or registry)")
    ] = False,
    name: Annotated[str | None, typer.Option("--name", help="a readable name")] = None,
    creds_out: Annotated[
        Path | None, typer.Option("--creds-out", help="write the .creds to this new file (0600)")
    ] = None,
    auth_dir: AuthDirOption = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Issue an organisation's NATS credentials for ROLE (shown once) and record its mandate.

    An organisation playing several roles (a bank that is a lender and a payment channel) is added once
    per role: each role has its own NATS user, all named after the organisation.
    """
    chosen, parties = _add_input(organisation, role, party, all_parties=all_parties)
    info = _require_system(data_dir)
    auth = _auth_dir(auth_dir, info)
    granted_by = _operator_subject(data_dir)

    async def run() -> None:
        nc = await _connect(info)
        try:
            book = MandateBook(nc.jetstream())
            await book.ensure_bucket()
            current = await book.get(organisation)
            if current is not None and current.active and current.grant(chosen) is not None:
                raise _fail(
                    f"ORG: {organisation} already has an active mandate as {chosen}; to change it, revoke it "
                    f"first (`kumkm integrators revoke {organisation}`) and add it again",
                    1,
                )
            issued = auth.issue_integrator(organisation, chosen)
            grant = Grant(
                role=chosen,
                parties=(ALL_PARTIES,) if all_parties else parties,
                user_keys=(issued.public_key,),
            )
            await book.put(_with_grant(organisation, current, grant, name, granted_by))
        finally:
            await nc.close()
        if creds_out is not None:
            _write_creds(creds_out, issued.creds)
            err.print(f"creds written to {creds_out} (mode 0600); no other copy is kept")
        else:
            err.print("the organisation's .creds follow; they are shown once and kept nowhere else:")
            typer.echo(issued.creds, nl=False)

    try:
        asyncio.run(run())
    except AuthDirError as exc:
        raise _fail(str(exc), 1) from None
    scope = "every party" if all_parties else f"{len(parties)} part{'y' if len(parties) == 1 else 'ies'}"
    err.print(
        f"added {organisation} as {chosen} for {scope}; it publishes on <type>.{organisation} "
        f"with inbox prefix _INBOX_{organisation}"
    )


def _parties(grant: Grant, shown: int = 3) -> str:
    if ALL_PARTIES in grant.parties:
        return "all"
    first = ", ".join(grant.parties[:shown])
    more = f", ... (+{len(grant.parties) - shown})" if len(grant.parties) > shown else ""
    return f"{len(grant.parties)}: {first}{more}"


@integrators_app.command("list")
def list_(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """The organisations and their mandates."""
    info = _require_system(data_dir)

    async def run() -> list[Mandate]:
        nc = await _connect(info)
        try:
            book = MandateBook(nc.jetstream())
            await book.ensure_bucket()
            return await book.all()
        finally:
            await nc.close()

    mandates = asyncio.run(run())
    table = Table(title=f"integrator organisations ({len(mandates)})")
    for column in ("org", "role", "status", "parties", "granted_at", "keys"):
        table.add_column(column)
    for m in mandates:
        for index, grant in enumerate(m.grants):
            table.add_row(
                m.organisation if index == 0 else "",
                str(grant.role),
                m.status,
                _parties(grant),
                m.granted_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if index == 0 else "",
                ", ".join(k[:10] + "..." for k in grant.user_keys),
            )
    # A table piped to a file or a test keeps its rows on one line each.
    Console(highlight=False, width=None if sys.stdout.isatty() else 200).print(table)


@integrators_app.command("revoke")
def revoke(
    organisation: Annotated[str, typer.Argument(metavar="ORG", help="the organisation id")],
    auth_dir: AuthDirOption = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Revoke an organisation: its mandate at once, its NATS users at once (open connections are cut)."""
    if not valid_org_id(organisation):
        raise _fail(f"ORG: {organisation!r} is not an organisation id ({ORG_ID_PATTERN})")
    info = _require_system(data_dir)
    auth = _auth_dir(auth_dir, info)
    servers = info.nats_url.split(",")
    sys_creds = auth.creds_path("sys")
    revoked_by = _operator_subject(data_dir)

    async def run() -> tuple[int, int]:
        account = auth.account_key(INTEGRATORS)
        # Users named after the organisation are its own (the name is the sender token): revoke the open
        # ones too, so the revocation does not depend on the stored mandate being intact.
        connected = {
            str(c["authorized_user"])
            for c in await account_connections(servers, sys_creds, account)
            if c.get("name_tag") == organisation and c.get("authorized_user")
        }
        nc = await _connect(info)
        try:
            book = MandateBook(nc.jetstream())
            await book.ensure_bucket()
            mandate = await book.get(organisation)
            # The current entry may be unreadable: every readable revision's keys are revoked as well.
            history = await book.history(organisation)
            if mandate is None and not history and not connected:
                raise _fail(f"ORG: {organisation} has no mandate (see `kumkm integrators list`)", 1)
            if mandate is None:
                err.print(
                    f"the stored mandate of {organisation} is missing or unreadable: revoking every user "
                    "key of its readable history and its open connections"
                )
            last = mandate or (history[-1] if history else Mandate(organisation=organisation))
            if mandate is None or mandate.active:
                now = datetime.now(UTC)
                await book.put(
                    last.model_copy(update={"status": "revoked", "revoked_at": now, "revoked_by": revoked_by})
                )
        finally:
            await nc.close()
        keys = {*last.user_keys, *(k for m in history for k in m.user_keys), *connected}
        if not keys:
            return 0, 0
        before = [
            c
            for c in await account_connections(servers, sys_creds, account)
            if c.get("authorized_user") in keys
        ]
        await push_account(servers, sys_creds, auth.revoke(sorted(keys)))
        after = [
            c
            for c in await account_connections(servers, sys_creds, account)
            if c.get("authorized_user") in keys
        ]
        return len(before), len(after)

    try:
        cut, left = asyncio.run(run())
    except (AuthDirError, PushError) as exc:
        raise _fail(f"the mandate is revoked, but the NATS revocation failed: {exc}", 1) from None
    note = f"; {left} still open (check the other servers)" if left else ""
    console.print(
        f"revoked {organisation}: mandate revoked, its NATS users revoked, "
        f"{cut - left} connection(s) cut{note}"
    )


# ---- kumkm nats ------------------------------------------------------------------------------------------


@nats_app.command("init")
def init(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="the auth directory to create")],
) -> None:
    """Create (or complete) an auth directory: operator, accounts, signing keys, platform users' creds."""
    existed = AuthDir(directory).exists()
    auth = AuthDir.init(directory)
    verb = "completed" if existed else "created"
    console.print(f"{verb} NATS auth directory {auth.root} (keys 0600: keep it secret)")
    console.print(f"  server config (public, include it in nats-server.conf): {auth.server_config}")
    console.print(f"  platform users' creds: {auth.creds_dir}/<user>.creds")
    console.print(
        f"  operator {auth.public('operator')}, account {PLATFORM} {auth.account_key(PLATFORM)}, "
        f"account {INTEGRATORS} (the organisations) {auth.account_key(INTEGRATORS)}"
    )


def _push(auth: AuthDir, data_dir: Path, *tokens: str) -> None:
    info = _system(data_dir)
    if info is None:
        console.print(
            f"stored in {auth.root}; no running system found: start nats with the new {auth.server_config} "
            "or run `kumkm nats push` once it runs"
        )
        return
    servers = info.nats_url.split(",")
    pushed: list[str] = []
    try:
        for token in tokens:
            asyncio.run(push_account(servers, auth.creds_path("sys"), token))
            pushed.append(decode(token).subject)
    except (PushError, OSError) as exc:
        raise _fail(
            f"stored in {auth.root}, but the push failed: {exc}; retry with `kumkm nats push`", 1
        ) from None
    names = {auth.account_key(a): a for a in ACCOUNTS}
    console.print(f"pushed account(s) {', '.join(names.get(k, k) for k in pushed)} to {info.nats_url}")


@nats_app.command("push")
def push(auth_dir: AuthDirOption = None, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Push the current KUMKM and INTEGRATORS account JWTs (keys, exports/imports, revocations)."""
    auth = _auth_dir(auth_dir, _system(data_dir))
    _push(auth, data_dir, auth.account_jwt(PLATFORM), auth.account_jwt(INTEGRATORS))


def _role(role: str) -> IntegratorRole:
    try:
        return IntegratorRole(role)
    except ValueError:
        raise _fail(f"ROLE: {role!r} is not a role; choose one of {ROLES}") from None


@nats_app.command("rotate-key")
def rotate_key(
    role: Annotated[str, typer.Argument(metavar="ROLE", help=f"one of {ROLES}")],
    auth_dir: AuthDirOption = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Add a new scoped signing key for ROLE: new users are signed with it; existing users keep working."""
    chosen = _role(role)
    auth = _auth_dir(auth_dir, _system(data_dir))
    key, token = auth.rotate_role_key(chosen)
    console.print(f"role {chosen}: new signing key {key}; older: {', '.join(auth.role_keys(chosen)[:-1])}")
    _push(auth, data_dir, token)


@nats_app.command("retire-key")
def retire_key(
    role: Annotated[str, typer.Argument(metavar="ROLE", help=f"one of {ROLES}")],
    key: Annotated[str | None, typer.Option("--key", help="the key to retire (default: the oldest)")] = None,
    auth_dir: AuthDirOption = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Remove an old scoped signing key of ROLE: every user it signed is cut off and refused."""
    chosen = _role(role)
    auth = _auth_dir(auth_dir, _system(data_dir))
    try:
        retired, token = auth.retire_role_key(chosen, key)
    except AuthDirError as exc:
        raise _fail(str(exc), 1) from None
    console.print(f"role {chosen}: retired signing key {retired}; re-issue its organisations' creds")
    _push(auth, data_dir, token)
