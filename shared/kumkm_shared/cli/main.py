"""The ``kumkm`` command: run the system, sign in, publish and inspect events, operate streams and the DLQ,
read the audit trail.

Service-specific commands (``kumkm loans tick``, ``kumkm catalog tick``, ...) are contributed by each
installed service through the ``kumkm.cli`` entry point group, so this package imports no service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from kumkm_shared.cli.runinfo import DEFAULT_DATA_DIR, running_system

if TYPE_CHECKING:
    from kumkm_shared.auth.client import DeviceAuthorization

app = typer.Typer(
    name="kumkm",
    help="KUMKM event platform: run, publish, inspect and operate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[Path, typer.Option("--data-dir", help="where run.json (and embedded server data) live")]
Issuer = Annotated[
    str | None,
    typer.Option("--issuer", help="the OpenID issuer (default: KUMKM_AUTH_ISSUER, else run.json's)"),
]
Client = Annotated[str, typer.Option("--client", help="the OpenID client the command line signs in through")]
AsUser = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="a demo user (password grant) or service account (client credentials) of the embedded "
        "provider `kumkm up` started; no prompt",
    ),
]


@app.callback()
def root(
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="KUMKM_TOKEN",
            show_envvar=True,
            help="the access token service calls send (default: the stored login of `kumkm login`)",
        ),
    ] = None,
) -> None:
    """KUMKM event platform: run, publish, inspect and operate."""
    from kumkm_shared.cli.service_api import use_token

    use_token(token)


def _signin_failed(exc: Exception) -> typer.Exit:
    err.print(f"[red]{exc}[/]", highlight=False)
    return typer.Exit(1)


@app.command()
def login(
    issuer: Issuer = None,
    client: Client = "kumkm-cli",
    as_: AsUser = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Sign in (device code: open the address shown and enter the code), and keep the tokens (mode 0600)."""
    from kumkm_shared.auth.client import TokenError, device_login
    from kumkm_shared.cli import signin

    def show(started: DeviceAuthorization) -> None:
        typer.echo(f"To sign in, open {started.verification_uri} and enter the code {started.user_code}")
        if started.verification_uri_complete:
            typer.echo(f"  (or open {started.verification_uri_complete})")
        typer.echo("waiting for the sign-in to complete...")

    async def run() -> Path:
        found = signin.resolve_issuer(issuer, data_dir)
        if as_:
            realm = signin.embedded_realm(found, data_dir)
            tokens = await signin.demo_tokens(found, realm, as_, client_id=client)
        else:
            tokens = await device_login(found, client, show)
        stored = signin.StoredLogin.of(found, client, tokens)
        path = signin.save_login(signin.login_path(data_dir), stored)
        roles = ", ".join(signin.claims_of(tokens.bearer).get("kumkm_roles") or []) or "no roles"
        typer.echo(f"signed in as {stored.username} ({roles}) at {found}; login kept in {path}")
        return path

    try:
        asyncio.run(run())
    except (signin.SignInError, TokenError) as exc:
        raise _signin_failed(exc) from None


@app.command()
def logout(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Forget the stored login."""
    from kumkm_shared.cli.signin import remove_logins

    removed = remove_logins(data_dir)
    if not removed:
        typer.echo("not signed in (no login kept)")
    for path in removed:
        typer.echo(f"signed out: removed {path}")


@app.command()
def token(
    as_: AsUser = None,
    issuer: Issuer = None,
    client: Client = "kumkm-cli",
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Print an access token (for curl): of a demo user with --as, else of the stored login."""
    from kumkm_shared.auth.client import TokenError
    from kumkm_shared.cli import signin

    async def run() -> str | None:
        if as_:
            found = signin.resolve_issuer(issuer, data_dir)
            realm = signin.embedded_realm(found, data_dir)
            return (await signin.demo_tokens(found, realm, as_, client_id=client)).bearer
        return await signin.stored_token(data_dir)

    try:
        bearer = asyncio.run(run())
    except (signin.SignInError, TokenError) as exc:
        raise _signin_failed(exc) from None
    if bearer is None:
        raise _signin_failed(signin.SignInError(signin.SIGN_IN_HINT))
    typer.echo(bearer)


@app.command()
def audit(  # noqa: PLR0917 - one typer option per filter
    service: Annotated[str, typer.Option(help="loans, catalog, notifications or all")] = "all",
    subject: Annotated[str | None, typer.Option(help="who acted (the token's subject)")] = None,
    outcome: Annotated[str | None, typer.Option(help="e.g. ok, forbidden, unauthenticated")] = None,
    command: Annotated[str | None, typer.Option(help="the command, e.g. loans.restructuring.decide")] = None,
    target: Annotated[str | None, typer.Option(help="exact, e.g. request_id=RR-1")] = None,
    since: Annotated[
        str | None, typer.Option(help="RFC 3339 date-time with a zone (2026-12-01T00:00:00Z), inclusive")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="RFC 3339 date-time with a zone (2026-12-01T00:00:00Z), exclusive")
    ] = None,
    refused: Annotated[bool, typer.Option("--refused", help="only refused attempts (4xx)")] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="records per service")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    url: Annotated[str | None, typer.Option(help="the service's base URL (one --service only)")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Read the audit trail (needs the auditor role): who did what, refused attempts too."""
    from kumkm_shared.cli.audit import AUDITED_SERVICES, read_trail, trail_table

    chosen = list(AUDITED_SERVICES) if service == "all" else [service]
    if any(s not in AUDITED_SERVICES for s in chosen):
        err.print(f"[red]--service: choose one of {', '.join(AUDITED_SERVICES)} or all, not {service!r}[/]")
        raise typer.Exit(2)
    if url and len(chosen) != 1:
        err.print("[red]--url needs one --service[/]")
        raise typer.Exit(2)
    params = {
        "subject": subject,
        "outcome": outcome,
        "command": command,
        "target": target,
        "since": since,
        "until": until,
        "refused": True if refused else None,
        "limit": limit,
    }
    records = read_trail(chosen, params, url=url, data_dir=data_dir)
    if as_json:
        typer.echo(json.dumps(records, indent=2, ensure_ascii=False))
    else:
        console.print(trail_table(records))


@app.command()
def up(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    services: Annotated[
        str | None,
        typer.Option(help="comma-separated services to run (default: every installed one)"),
    ] = None,
    demo: Annotated[
        bool,
        typer.Option(help="seed the Kota Bekasi sample and run the demo flow once everything is ready"),
    ] = False,
    cluster: Annotated[
        bool,
        typer.Option(
            help="embedded servers as a cluster: 3 NATS nodes (R3 streams), a Postgres primary with a "
            "synchronous standby, and 2 replicas of each service"
        ),
    ] = False,
) -> None:
    """Start servers (embedded unless URLs are given), provision streams, and run the services."""
    from kumkm_shared.cli.up import ALL_SERVICES, installed_services, run_up

    given = services.split(",") if services is not None else None
    chosen = [s.strip() for s in given if s.strip()] if given is not None else installed_services()
    unknown = sorted(set(chosen) - set(ALL_SERVICES))
    if unknown:
        err.print(f"[red]unknown services {unknown}; choose from {list(ALL_SERVICES)}[/]")
        raise typer.Exit(2)
    raise typer.Exit(run_up(data_dir, chosen, demo=demo, cluster=cluster))


@app.command()
def seed(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="validate the sample's events and print counts; publish nothing")
    ] = False,
) -> None:
    """Publish the deterministic Kota Bekasi sample (647 cooperatives, 3,000 UMKM, activity reports, loans,
    e-catalog sales) into the running system, as `kumkm up --demo` does. Re-running it within a month is a
    no-op: the events' ids are the same."""
    from kumkm_shared.cli.seed import generate
    from kumkm_shared.cli.seed import seed as publish_sample
    from kumkm_shared.contracts import validate_event_payload

    sample = generate()
    if dry_run:
        events = sample.registry_events() + sample.loan_events()
        for event in events:
            validate_event_payload(event)
        console.print(
            f"valid: {len(events)} events; {len(sample.cooperatives)} cooperatives, {len(sample.umkm)} UMKM, "
            f"{len(sample.reports)} activity reports, {len(sample.loans)} loans, {len(sample.sales)} sales"
        )
        return
    asyncio.run(publish_sample(running_system(data_dir), data_dir, err, sample))


@app.command()
def provision(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    replicas: Annotated[int, typer.Option(envvar="KUMKM_STREAM_REPLICAS", help="stream replicas")] = 1,
) -> None:
    """Create or update every stream and durable consumer (idempotent)."""
    from kumkm_shared.cli.up import provision_streams

    console.print(provision_streams(running_system(data_dir), replicas))


@app.command()
def publish(
    source: Annotated[
        str, typer.Argument(help="a JSON file (one event, a list, or JSON lines), or - for stdin")
    ],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    sender: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="the integrator organisation sending the events: integrators' event types are published on "
            "<type>.<organisation>, which only that organisation's NATS credentials may write",
        ),
    ] = None,
) -> None:
    """Validate events against their contracts, then publish them with de-duplication.

    Invalid input exits with code 2, naming each bad field, and publishes nothing. Validation happens
    before any connection, so this also works offline as a contract checker (see --check).
    """
    from kumkm_shared.cli.publish import (
        InvalidInputError,
        headers_for,
        read_events,
        subject_for,
        validate_all,
    )
    from kumkm_shared.contracts import ContractError

    try:
        events = validate_all(read_events(source))
        subjects = [subject_for(event.envelope.type, sender) for event in events]
    except (ContractError, InvalidInputError) as exc:
        err.print(f"[red]invalid:[/] {exc}")
        raise typer.Exit(2) from None
    info = running_system(data_dir)

    async def run() -> None:
        from kumkm_shared.cli.connect import connect
        from kumkm_shared.contracts import spec_for

        async with connect(info) as nc:
            js = nc.jetstream()
            for event, subject in zip(events, subjects, strict=True):
                env = event.envelope
                ack = await js.publish(
                    subject,
                    env.to_json_bytes(),
                    headers=headers_for(event),
                    stream=spec_for(env.type).stream,
                )
                note = " (duplicate: already on the stream)" if ack.duplicate else ""
                console.print(f"published {subject} id={env.id} seq={ack.seq}{note}")

    asyncio.run(run())


@app.command()
def check(source: Annotated[str, typer.Argument(help="a JSON file or - for stdin")]) -> None:
    """Validate events against their contracts without publishing (offline)."""
    from kumkm_shared.cli.publish import InvalidInputError, read_events, validate_all
    from kumkm_shared.contracts import ContractError

    try:
        events = validate_all(read_events(source))
    except (ContractError, InvalidInputError) as exc:
        err.print(f"[red]invalid:[/] {exc}")
        raise typer.Exit(2) from None
    for event in events:
        console.print(f"valid {event.envelope.type} id={event.envelope.id}")


@app.command()
def tail(
    subject: Annotated[str, typer.Argument(help="subject filter")] = "kumkm.>",
    data_dir: DataDir = DEFAULT_DATA_DIR,
    all_: Annotated[
        bool, typer.Option("--all", help="from the start of the stream, not only new events")
    ] = False,
    limit: Annotated[int, typer.Option(help="stop after this many events (0 = follow forever)")] = 0,
) -> None:
    """Follow events, pretty-printed."""
    info = running_system(data_dir)

    async def run() -> None:
        from kumkm_shared.cli.connect import connect
        from kumkm_shared.cli.follow import follow

        async with connect(info, name="kumkm-tail") as nc:
            seen = 0
            async with contextlib.aclosing(follow(nc.jetstream(), subject, from_start=all_)) as stream:
                async for msg in stream:
                    _print_event(msg.subject, msg.data, msg.metadata.sequence.stream)
                    seen += 1
                    if limit and seen >= limit:
                        break

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


def _print_event(subject: str, data: bytes, seq: int) -> None:
    try:
        obj = json.loads(data)
        body = obj.get("data", obj) if isinstance(obj, dict) else obj
        event_id = obj.get("id", "") if isinstance(obj, dict) else ""
        console.print(f"[bold cyan]#{seq}[/] [bold]{subject}[/] [dim]{event_id}[/]")
        console.print_json(data=body)
    except (ValueError, UnicodeDecodeError):
        console.print(f"[bold cyan]#{seq}[/] [bold]{subject}[/] [red]not JSON[/] {data[:200]!r}")


@app.command()
def streams(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Show streams, consumers, pending counts and the DLQ count."""
    info = running_system(data_dir)

    async def run() -> None:
        from kumkm_shared.cli.connect import connect

        async with connect(info, name="kumkm-streams") as nc:
            jsm = nc.jetstream()
            table = Table(title="streams")
            for col in ("stream", "subjects", "messages", "bytes", "last seq", "replicas"):
                table.add_column(col)
            consumers = Table(title="durable consumers")
            for col in ("stream", "consumer", "pending", "ack pending", "redelivered", "delivered seq"):
                consumers.add_column(col)
            dlq_count = 0
            for stream in await jsm.streams_info():
                cfg, state = stream.config, stream.state
                table.add_row(
                    cfg.name or "",
                    ", ".join(cfg.subjects or []),
                    str(state.messages),
                    str(state.bytes),
                    str(state.last_seq),
                    str(cfg.num_replicas),
                )
                if cfg.name == "KUMKM_DLQ":
                    dlq_count = state.messages
                for c in await jsm.consumers_info(cfg.name or ""):
                    consumers.add_row(
                        cfg.name or "",
                        c.name,
                        str(c.num_pending),
                        str(c.num_ack_pending),
                        str(c.num_redelivered),
                        str(c.delivered.stream_seq if c.delivered else 0),
                    )
            console.print(table)
            console.print(consumers)
            console.print(f"[bold]dead letters:[/] {dlq_count}")

    asyncio.run(run())


def _mount_plugins() -> None:
    from kumkm_shared.cli.schemas import app as schemas_app

    app.add_typer(schemas_app, name="schemas", help="Export or check the JSON Schemas of every event.")
    from kumkm_shared.cli.integrators import integrators_app, nats_app

    app.add_typer(
        integrators_app, name="integrators", help="Integrator organisations: credentials, mandates."
    )
    app.add_typer(nats_app, name="nats", help="The NATS operator, accounts and signing keys (operator mode).")
    from kumkm_shared.cli.registry import app as registry_app

    app.add_typer(registry_app, name="registry", help="The party registry: import a city's list (CSV, XLSX).")
    try:
        from kumkm_shared.cli.dlq import app as dlq_app
    except ImportError:  # pragma: no cover - the DLQ commands ship with shared; keep the CLI usable
        pass
    else:
        app.add_typer(dlq_app, name="dlq", help="List, show, replay and purge dead letters.")
    for ep in entry_points(group="kumkm.cli"):
        try:
            app.add_typer(ep.load(), name=ep.name, help=f"Commands of the {ep.name} service.")
        except (ImportError, AttributeError) as exc:
            err.print(f"[yellow]warning: the {ep.name} commands are unavailable: {exc}[/]")


_mount_plugins()


def main() -> None:
    app()
