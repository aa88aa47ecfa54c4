"""``kumkm notifications ...``: the contact directory, the activity feed and the inbox, over the HTTP API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from kumkm_shared.cli.service_api import call_service

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Contacts, activity feed and inbox.")
console = Console()
err = Console(stderr=True)

Url = Annotated[
    str | None,
    typer.Option(
        "--url", envvar="KUMKM_NOTIFICATIONS_URL", help="the service's base URL (default: from run.json)"
    ),
]
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="where run.json lives")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def _api(method: str, url: str | None, data_dir: Path | None, path: str, **kwargs: Any) -> Any:
    return call_service("notifications", method, path, url=url, data_dir=data_dir, **kwargs)


@app.command()
def contacts(url: Url = None, data_dir: DataDir = None, limit: int = 100, as_json: AsJson = False) -> None:
    """List the contact directory."""
    rows = _api("GET", url, data_dir, "/contacts", params={"limit": limit})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"contacts ({len(rows)})")
    for col in ("party", "name", "locale", "channels", "opt-outs", "email", "phone", "webhook"):
        table.add_column(col)
    for c in rows:
        table.add_row(
            c["party_id"],
            c["name"],
            c["locale"],
            ",".join(c["channels"]),
            ",".join(c["opt_outs"]),
            c["email"] or "",
            c["phone"] or "",
            c["webhook_url"] or "",
        )
    console.print(table)


@app.command("set-contact")
def set_contact(  # noqa: PLR0917 - typer maps each option to a parameter
    party_id: str,
    name: Annotated[str, typer.Option(help="display name")],
    email: Annotated[str | None, typer.Option()] = None,
    phone: Annotated[str | None, typer.Option(help="E.164, e.g. +6281234567890")] = None,
    webhook_url: Annotated[str | None, typer.Option()] = None,
    locale: Annotated[str, typer.Option(help="id_ID or en_US")] = "id_ID",
    channel: Annotated[
        list[str] | None, typer.Option(help="repeat: email, webhook, sms, whatsapp, inbox")
    ] = None,
    opt_out: Annotated[
        list[str] | None, typer.Option(help="repeat: restructuring, repayment, curation, orders")
    ] = None,
    url: Url = None,
    data_dir: DataDir = None,
) -> None:
    """Create or replace a party's contact (PUT /contacts/{party_id})."""
    body = {
        "name": name,
        "email": email,
        "phone": phone,
        "webhook_url": webhook_url,
        "locale": locale,
        "channels": channel or ["inbox"],
        "opt_outs": opt_out or [],
    }
    typer.echo(json.dumps(_api("PUT", url, data_dir, f"/contacts/{party_id}", json=body), indent=2))


@app.command()
def feed(
    party_id: Annotated[str | None, typer.Option("--party-id")] = None,
    status: Annotated[
        str | None, typer.Option(help="pending, sending, delivered, failed, unknown, ...")
    ] = None,
    limit: int = 50,
    url: Url = None,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """The activity feed: every notification with its attempts and the provider's responses."""
    params: dict[str, Any] = {"limit": limit}
    if party_id:
        params["party_id"] = party_id
    if status:
        params["status"] = status
    rows = _api("GET", url, data_dir, "/notifications", params=params)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"notifications ({len(rows)})")
    for col in ("created", "party", "channel", "status", "attempts", "event", "last response"):
        table.add_column(col)
    for r in rows:
        log = r["attempt_log"]
        last = log[-1]["response"] if log else (r["detail"] or "")
        table.add_row(
            str(r["created_at"])[:19],
            r["party_id"],
            r["channel"] or "-",
            r["status"],
            str(r["attempts"]),
            r["event_type"].removeprefix("kumkm."),
            (last or "")[:60],
        )
    console.print(table)


@app.command()
def inbox(party_id: str, unread_only: bool = False, url: Url = None, data_dir: DataDir = None) -> None:
    """A party's in-app inbox."""
    box = _api("GET", url, data_dir, f"/inbox/{party_id}", params={"unread_only": unread_only})
    console.print(f"[bold]{party_id}[/]: {box['unread']} unread")
    for m in box["messages"]:
        mark = "[bold]*[/]" if m["unread"] else " "
        console.print(f"{mark} {str(m['created_at'])[:19]}  {m['subject']}  [dim]{m['id']}[/]")


@app.command()
def resend(notification_id: str, url: Url = None, data_dir: DataDir = None) -> None:
    """Send an 'unknown' or 'failed' notification again (after checking it did not arrive), or route a
    'no_contact' or 'suppressed' one now that the party can be reached."""
    typer.echo(json.dumps(_api("POST", url, data_dir, f"/notifications/{notification_id}/resend")))


@app.command()
def reroute(party_id: str, url: Url = None, data_dir: DataDir = None) -> None:
    """Route every 'no_contact' or 'suppressed' notification of a party, once its contact exists."""
    typer.echo(json.dumps(_api("POST", url, data_dir, f"/contacts/{party_id}/reroute")))
