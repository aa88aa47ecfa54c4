"""``kumkm dlq``: list, show, replay and purge dead letters."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from kumkm_shared.cli.runinfo import DEFAULT_DATA_DIR, running_system
from kumkm_shared.messaging.dlq_ops import (
    DeadLetterFilter,
    StoredDeadLetter,
    get_dead_letter,
    purge,
    read_dead_letters,
    replay,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from nats.js import JetStreamContext

    from kumkm_shared.cli.runinfo import RunInfo

T = TypeVar("T")
app = typer.Typer(no_args_is_help=True)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[Path, typer.Option("--data-dir", help="where run.json lives")]
Context = Annotated[str | None, typer.Option("--context", help="loans, catalog or notifications")]
Reason = Annotated[str | None, typer.Option("--reason", help="reason code, e.g. schema_violation")]
Since = Annotated[str | None, typer.Option("--since", help="ISO time, or a duration like 30m, 2h, 1d")]


def parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    if value[-1] in units and value[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{units[value[-1]]: int(value[:-1])})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"--since {value!r}: use an ISO time or a duration like 30m, 2h, 1d"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _run(info: RunInfo, work: Callable[[JetStreamContext], Awaitable[T]]) -> T:
    from kumkm_shared.cli.connect import connect

    async def main() -> T:
        async with connect(info, name="kumkm-dlq") as nc:
            return await work(nc.jetstream())

    return asyncio.run(main())


@app.command("list")
def list_(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    context: Context = None,
    reason: Reason = None,
    since: Since = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line, for scripts")] = False,
) -> None:
    """List dead letters, filtered by context, reason and time."""
    flt = DeadLetterFilter(context=context, reason=reason, since=parse_since(since))
    items = _run(running_system(data_dir), lambda js: read_dead_letters(js, flt))
    if as_json:
        for item in items:
            letter = item.letter
            typer.echo(
                json.dumps(
                    {
                        "id": item.seq,
                        "failed_at": letter.failed_at,
                        "context": letter.service,
                        "consumer": letter.consumer,
                        "reason_code": letter.reason_code,
                        "subject": letter.subject,
                        "deliveries": letter.delivery_count,
                        "reason": letter.reason,
                    }
                )
            )
        return
    table = Table(title=f"dead letters ({len(items)})")
    for col in ("id", "failed at", "context", "consumer", "reason", "subject", "deliveries", "detail"):
        table.add_column(col)
    for item in items:
        letter = item.letter
        table.add_row(
            str(item.seq),
            letter.failed_at[:19],
            letter.service,
            letter.consumer,
            letter.reason_code,
            letter.subject,
            str(letter.delivery_count),
            letter.reason.splitlines()[0][:80],
        )
    console.print(table)


@app.command()
def show(
    dlq_id: Annotated[int, typer.Argument(help="the dead letter's id (its DLQ sequence)")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Show a dead letter: the original message, its headers, the reason and the delivery history."""
    info = running_system(data_dir)

    async def work(js: JetStreamContext) -> tuple[StoredDeadLetter, list[StoredDeadLetter]]:
        item = await get_dead_letter(js, dlq_id)
        same = [x for x in await read_dead_letters(js) if x.letter.dlq_id == item.letter.dlq_id]
        return item, same

    item, history = _run(info, work)
    letter = item.letter
    console.print(f"[bold]dead letter {item.seq}[/] ({letter.dlq_id})")
    console.print(f"context: {letter.service}  consumer: {letter.consumer}")
    console.print(f"original: stream {letter.stream} #{letter.stream_seq}")
    console.print(f"subject: {letter.subject}")
    console.print(f"reason:  [red]{letter.reason_code}[/]\n{letter.reason}")
    for error in letter.errors:
        console.print(f"  - {error.get('field')}: {error.get('message')}")
    console.print(f"deliveries: {letter.delivery_count}; failed at {letter.failed_at}")
    if len(history) > 1:
        console.print("history of this message in the DLQ:")
        for h in history:
            console.print(f"  #{h.seq} {h.letter.failed_at} {h.letter.reason_code}")
    console.print("[bold]headers[/]")
    console.print_json(data=letter.headers)
    console.print("[bold]original[/]")
    try:
        console.print_json(data=json.loads(letter.original))
    except (ValueError, UnicodeDecodeError):
        console.print(repr(letter.original[:2000]))


@app.command("replay")
def replay_cmd(
    dlq_id: Annotated[int | None, typer.Argument(help="the dead letter's id")] = None,
    reason: Reason = None,
    context: Context = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Re-publish originals to their subjects after a fix (idempotent: no second effect)."""
    if dlq_id is None and reason is None:
        err.print("[red]give a dead letter id or --reason[/]")
        raise typer.Exit(2)

    async def work(js: JetStreamContext) -> list[tuple[int, bool]]:
        if dlq_id is not None:
            items = [await get_dead_letter(js, dlq_id)]
        else:
            items = await read_dead_letters(js, DeadLetterFilter(context=context, reason=reason))
        done = []
        for item in items:
            ack = await replay(js, item)
            done.append((item.seq, bool(ack.duplicate)))
        return done

    for seq, duplicate in _run(running_system(data_dir), work):
        console.print(f"replayed dead letter {seq}" + (" (already replayed)" if duplicate else ""))


@app.command("purge")
def purge_cmd(
    reason: Reason = None,
    context: Context = None,
    all_: Annotated[bool, typer.Option("--all", help="purge every dead letter")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Delete dead letters (by reason or context, or --all). Asks for confirmation."""
    if not (reason or context or all_):
        err.print("[red]say what to purge: --reason, --context or --all[/]")
        raise typer.Exit(2)
    info = running_system(data_dir)
    flt = DeadLetterFilter(context=context, reason=reason)
    items = _run(info, lambda js: read_dead_letters(js, flt))
    if not items:
        console.print("nothing to purge")
        return
    if not yes and not typer.confirm(f"purge {len(items)} dead letters?", default=False):
        raise typer.Exit(1)
    count = _run(info, lambda js: purge(js, items))
    console.print(f"purged {count} dead letters")
