"""``kumkm catalog ...``: operate the running catalog service through its HTTP API."""

from __future__ import annotations

import json
from datetime import datetime  # noqa: TC003 - typer reads the annotations at runtime
from pathlib import Path
from typing import Annotated, Any

import typer

from kumkm_shared.cli.runinfo import DEFAULT_DATA_DIR
from kumkm_shared.cli.service_api import call_service
from kumkm_shared.money import format_rupiah

app = typer.Typer(
    help="The catalog service: curation, orders, timeouts and statistics.", no_args_is_help=True
)

UrlOption = Annotated[
    str | None, typer.Option("--url", help="the catalog service's base URL (default: run.json)")
]
DataDirOption = Annotated[Path, typer.Option("--data-dir", help="where run.json lives")]


def _api(method: str, url: str | None, data_dir: Path, path: str, **kwargs: Any) -> Any:
    return call_service("catalog", method, path, url=url, data_dir=data_dir, timeout=30.0, **kwargs)


def _show(body: Any) -> None:
    typer.echo(json.dumps(body, indent=2, ensure_ascii=False))


@app.command()
def tick(
    on: Annotated[datetime | None, typer.Option("--date", formats=["%Y-%m-%d"], help="business date")] = None,
    url: UrlOption = None,
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
) -> None:
    """Cancel orders whose seller did not confirm in time, as of --date (default: the service's today)."""
    body = _api("POST", url, data_dir, "/tick", json={"date": on.date().isoformat()} if on else {})
    cancelled = body["cancelled"]
    typer.echo(f"{body['date']}: {len(cancelled)} order(s) cancelled for seller timeout")
    for order_id in cancelled:
        typer.echo(f"  {order_id}")


@app.command()
def curate(  # noqa: PLR0917 - one typer option per parameter
    product_id: str,
    decision: Annotated[str, typer.Option(help="approved, revision_requested or rejected")],
    tier: Annotated[
        str | None, typer.Option(help="national, sectoral or local (required to approve)")
    ] = None,
    notes: Annotated[str, typer.Option(help="notes for the seller")] = "",
    price: Annotated[str | None, typer.Option(help="listed price, default the submitted price")] = None,
    revision: Annotated[int | None, typer.Option(help="refuse if this revision was superseded")] = None,
    lift_sanction: Annotated[
        bool,
        typer.Option(
            help="approve a product once delisted as sanctioned (needs --notes); a second, different "
            "curator must lift it too"
        ),
    ] = False,
    url: UrlOption = None,
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
) -> None:
    """Decide a product waiting for curation, as the signed-in curator."""
    payload: dict[str, Any] = {"decision": decision, "notes": notes}
    if tier:
        payload["tier"] = tier
    if price:
        payload["listed_price"] = price
    if revision:
        payload["revision"] = revision
    if lift_sanction:
        payload["lift_sanction"] = True
    body = _api("POST", url, data_dir, f"/products/{product_id}/curation", json=payload)
    if "decision" not in body:  # the first curator's lift of a sanction: the product's view
        typer.echo(
            f"{product_id} revision {body['revision']}: {body['status']} (a second curator must lift it)"
        )
        return
    listed = ""
    if body.get("listed_price"):
        listed = f" at {format_rupiah(body['listed_price'], 'en')} ({body['tier']})"
    typer.echo(f"{product_id} revision {body['revision']}: {body['decision']}{listed}")


@app.command()
def queue(url: UrlOption = None, data_dir: DataDirOption = DEFAULT_DATA_DIR) -> None:
    """Products waiting for a curator, oldest first."""
    for item in _api("GET", url, data_dir, "/curation/queue")["items"]:
        typer.echo(f"{item['product_id']}  rev {item['revision']}  {item['category']}  {item['name']}")


@app.command()
def product(product_id: str, url: UrlOption = None, data_dir: DataDirOption = DEFAULT_DATA_DIR) -> None:
    """Show one product."""
    _show(_api("GET", url, data_dir, f"/products/{product_id}"))


@app.command()
def order(order_id: str, url: UrlOption = None, data_dir: DataDirOption = DEFAULT_DATA_DIR) -> None:
    """Show one order with its history."""
    _show(_api("GET", url, data_dir, f"/orders/{order_id}"))


@app.command()
def cancel(
    order_id: str,
    reason: Annotated[str, typer.Option(help="why the buyer cancels")],
    url: UrlOption = None,
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
) -> None:
    """Cancel an accepted or confirmed order for the buyer (releases the stock)."""
    body = _api("POST", url, data_dir, f"/orders/{order_id}/cancel", json={"reason": reason})
    typer.echo(f"{order_id}: {body['status']}")


@app.command()
def stats(url: UrlOption = None, data_dir: DataDirOption = DEFAULT_DATA_DIR) -> None:
    """UMKM share of committed e-catalog purchase value against the national target."""
    body = _api("GET", url, data_dir, "/stats")
    overall = body["overall"]
    typer.echo(
        f"UMKM (micro and small) share: {overall['umkm_share_pct'] or '-'}% of "
        f"{format_rupiah(overall['total_value'], 'en')} "
        f"(target {body['target_pct']}%)"
    )
    for row in body["by_region"]:
        value = format_rupiah(row["total_value"], "en")
        typer.echo(f"  {row['province']} / {row['city']}: {row['umkm_share_pct']}% of {value}")
