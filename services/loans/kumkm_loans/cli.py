"""``kumkm loans ...``: operate the running loans service through its HTTP API."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from kumkm_shared.cli.runinfo import DEFAULT_DATA_DIR
from kumkm_shared.cli.service_api import call_service
from kumkm_shared.clock import SystemClock, business_date

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Loans, collectibility and restructuring.")

Url = Annotated[
    str | None,
    typer.Option(
        "--url", envvar="KUMKM_LOANS_URL", help="the loans service's base URL (default: from run.json)"
    ),
]
DataDir = Annotated[Path, typer.Option("--data-dir", help="where run.json lives")]


def _api(method: str, url: str | None, data_dir: Path | None, path: str, **kwargs: Any) -> Any:
    return call_service("loans", method, path, url=url, data_dir=data_dir, **kwargs)


def _print(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False))


@app.command()
def tick(
    date_: Annotated[
        str, typer.Option("--date", help="business date YYYY-MM-DD (default: today in Asia/Jakarta)")
    ] = "",
    url: Url = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Grade every loan as of a business date; overdue installments and grade changes are announced once."""
    if date_:
        try:
            date.fromisoformat(date_)
        except ValueError:
            typer.echo(f"--date must be YYYY-MM-DD, got {date_!r}", err=True)
            raise typer.Exit(2) from None
    else:
        date_ = business_date(SystemClock()).isoformat()
    result = _api("POST", url, data_dir, "/tick", json={"date": date_})
    typer.echo(
        f"tick {result['as_of']}: {result['loans_checked']} loans checked, "
        f"{result['overdue_announced']} installments overdue, {result['grade_changes']} grade changes"
    )


@app.command()
def decide(
    request_id: Annotated[str, typer.Argument(help="the referred restructuring request")],
    approve: Annotated[bool | None, typer.Option("--approve/--reject", help="the decision")] = None,
    reason: Annotated[str, typer.Option(help="why (kept with the decision)")] = "",
    decided_on: Annotated[str | None, typer.Option(help="decision date YYYY-MM-DD (default: today)")] = None,
    url: Url = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Approve or reject a request referred to an officer, as the person signed in.

    Above the second-approval threshold an approval waits for a second person, a supervisor.
    """
    if approve is None or not reason.strip():
        typer.echo("give --approve or --reject and a --reason", err=True)
        raise typer.Exit(2)
    body: dict[str, Any] = {"decision": "approve" if approve else "reject", "reason": reason}
    if decided_on:
        body["decided_on"] = decided_on
    result = _api("POST", url, data_dir, f"/restructurings/{request_id}/decision", json=body)
    status, first = result["status"], result.get("first_approval")
    if status == "awaiting_second_approval" and first:
        typer.echo(f"{request_id}: approved once by {first['by']}; waiting for a supervisor")
    elif first:
        typer.echo(f"{request_id}: {status} by {result['decided_by']} (first approval by {first['by']})")
    else:
        typer.echo(f"{request_id}: {status} by {result['decided_by']}")


@app.command()
def loan(
    loan_id: str,
    as_of: Annotated[str | None, typer.Option(help="arrears as of YYYY-MM-DD")] = None,
    url: Url = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Show a loan with its schedule and arrears (JSON)."""
    params = {"as_of": as_of} if as_of else {}
    _print(_api("GET", url, data_dir, f"/loans/{loan_id}", params=params))


@app.command()
def requests(
    status: Annotated[
        str | None, typer.Option(help="approved, rejected, referred or awaiting_second_approval")
    ] = None,
    region: Annotated[str | None, typer.Option(help="a province or a city")] = None,
    url: Url = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """List restructuring requests."""
    params = {k: v for k, v in {"status": status, "region": region}.items() if v}
    result = _api("GET", url, data_dir, "/restructurings", params=params)
    for item in result["items"]:
        region_name = item["borrower"]["region"]["city"] or "-"
        typer.echo(f"{item['request_id']}\t{item['loan_id']}\t{item['status']}\t{region_name}")


@app.command()
def progress(
    province: Annotated[str | None, typer.Option()] = None,
    city: Annotated[str | None, typer.Option()] = None,
    url: Url = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """The restructuring progress the ministry monitors (JSON)."""
    params = {k: v for k, v in {"province": province, "city": city}.items() if v}
    _print(_api("GET", url, data_dir, "/progress", params=params))
