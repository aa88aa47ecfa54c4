"""``kumkm registry import FILE --as ORG``: a city's cooperative, UMKM or activity list as registry events.

Columns, values and behaviour: ``docs/rules/registry-import.md``.
"""

from __future__ import annotations

import asyncio
import os
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kumkm_shared.cli.runinfo import DEFAULT_DATA_DIR, running_system
from kumkm_shared.integrators import ORG_ID_PATTERN, valid_org_id
from kumkm_shared.registry_import.columns import ImportKind, detect_kind
from kumkm_shared.registry_import.rows import RowParser
from kumkm_shared.registry_import.run import (
    Importer,
    ImportFailedError,
    ImportState,
    StateError,
    errors_path_for,
    state_path_for,
)
from kumkm_shared.registry_import.source import SourceError, Table, file_sha256, open_table

if TYPE_CHECKING:
    from kumkm_shared.cli.runinfo import RunInfo
    from kumkm_shared.registry_import.run import ImportSummary

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]{message}[/]", highlight=False)
    return typer.Exit(code)


@app.command("import")
def import_(  # noqa: PLR0917 - one typer option each
    file: Annotated[
        Path, typer.Argument(help="the list: .csv (UTF-8, , or ; separated) or .xlsx (first sheet)")
    ],
    sender: Annotated[
        str,
        typer.Option(
            "--as",
            help="the registry organisation publishing the rows (<type>.<organisation>; its mandate must"
            " cover the parties)",
        ),
    ],
    kind: Annotated[
        ImportKind | None, typer.Option(help="what the rows are (default: recognised from the headers)")
    ] = None,
    errors: Annotated[
        Path | None, typer.Option("--errors", help="the per-row error file (default: FILE.errors.csv)")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue an interrupted import after its last acknowledged row")
    ] = False,
    update: Annotated[
        bool,
        typer.Option("--update", help="publish cooperative/UMKM records as updated instead of registered"),
    ] = False,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="the registry date (YYYY-MM-DD) of rows without a date column"),
    ] = None,
    creds: Annotated[
        Path | None,
        typer.Option(
            "--creds",
            help="the organisation's NATS .creds (default: KUMKM_NATS_CREDS, else the running system's)",
        ),
    ] = None,
    window: Annotated[int, typer.Option(min=1, max=10_000, help="publishes in flight at most")] = 512,
    ack_timeout: Annotated[
        float, typer.Option(min=0.1, max=120, help="seconds to wait for each publish's acknowledgement")
    ] = 10.0,
    rate: Annotated[
        float,
        typer.Option(min=0, envvar="KUMKM_IMPORT_RATE", help="rows per second at most (0: no limit)"),
    ] = 0.0,
    data_dir: Annotated[Path, typer.Option("--data-dir", help="where run.json lives")] = DEFAULT_DATA_DIR,
) -> None:
    """Publish a registry list (CSV or XLSX) as registry events: idempotent, resumable, with an error file.

    Exit codes: 0 every row published; 1 some rows had errors (the others are published; see the error
    file) or publishing stopped (resume with --resume); 2 the input or the options are wrong; 3 no system.
    """
    if not valid_org_id(sender):
        raise _fail(f"--as: {sender!r} is not an organisation id ({ORG_ID_PATTERN})")
    as_of_date = None
    if as_of is not None:
        try:
            as_of_date = date.fromisoformat(as_of)
        except ValueError:
            raise _fail(f"--as-of: not a date (YYYY-MM-DD): {as_of!r}") from None
    if not file.is_file():
        raise _fail(f"no such file: {file}")
    state_path = state_path_for(file)
    errors_path = errors or errors_path_for(file)
    info = running_system(data_dir)
    if creds is None and os.environ.get("KUMKM_NATS_CREDS"):
        creds = Path(os.environ["KUMKM_NATS_CREDS"])
    try:
        summary = asyncio.run(
            _run(
                file,
                info,
                sender,
                kind,
                errors_path=errors_path,
                state_path=state_path,
                resume=resume,
                update=update,
                as_of=as_of_date,
                creds=creds
                or (Path(os.environ["KUMKM_NATS_CREDS"]) if os.environ.get("KUMKM_NATS_CREDS") else None),
                window=window,
                ack_timeout=ack_timeout,
                rate=rate,
                previous=ImportState.load(state_path) if resume and state_path.exists() else None,
            )
        )
    except (SourceError, StateError) as exc:
        raise _fail(str(exc)) from None
    except ImportFailedError as exc:
        raise _fail(f"{exc}; the state is in {state_path}: run again with --resume", code=1) from None
    _report(summary, errors_path)
    if summary.error_rows:
        raise typer.Exit(1)


def _parser(table: Table, file: Path, sender: str, kind: ImportKind | None, **options: object) -> RowParser:
    found = kind or detect_kind(table.headers)
    if found is None:
        raise SourceError(
            f"{file}: the headers name no known list ({', '.join(h for h in table.headers if h)});"
            " give --kind (docs/rules/registry-import.md lists the columns)"
        )
    parser = RowParser(found, table.headers, organisation=sender, **options)  # type: ignore[arg-type]
    if parser.missing:
        missing = ", ".join(parser.missing)
        hint = "; or give --as-of" if "as_of" in parser.missing else ""
        raise SourceError(f"{file}: row 1 lacks the {found} columns {missing}{hint}")
    if parser.unknown:
        err.print(f"[yellow]ignored columns: {', '.join(parser.unknown)}[/]", highlight=False)
    return parser


async def _run(
    file: Path,
    info: RunInfo,
    sender: str,
    kind: ImportKind | None,
    *,
    errors_path: Path,
    state_path: Path,
    resume: bool,
    update: bool,
    as_of: date | None,
    creds: Path | None,
    window: int,
    ack_timeout: float,
    rate: float,
    previous: ImportState | None,
) -> ImportSummary:
    from kumkm_shared.cli.connect import connect

    sha256 = file_sha256(file)
    with open_table(file) as table:
        parser = _parser(table, file, sender, kind, update=update, as_of=as_of)
        if resume and previous is not None:
            state = previous
            state.check_fits(sha256, sender, parser.kind.value)
            if state.complete:
                err.print(f"{file} was imported completely already ({state_path}); nothing to resume")
        elif resume:
            raise StateError(f"--resume: no state file {state_path} (nothing was interrupted)")
        else:
            state = ImportState(file=str(file), sha256=sha256, organisation=sender, kind=parser.kind.value)
        # An organisation's user receives its PubAcks only on its private inbox (deploy/README.md).
        inbox = f"_INBOX_{sender}" if creds is not None else None
        async with connect(info, name="kumkm-registry-import", creds=creds, inbox_prefix=inbox) as nc:
            js = nc.jetstream(publish_async_max_pending=window)
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=False,
                disable=not err.is_terminal,
            ) as bar:
                already = state.last_row - 1 if resume else 0
                task = bar.add_task(f"{parser.kind} rows", total=table.total, completed=already)
                importer = Importer(
                    js,
                    parser,
                    state,
                    state_path,
                    errors_path,
                    resume=resume,
                    window=window,
                    ack_timeout=ack_timeout,
                    rate=rate,
                    progress=lambda n: bar.advance(task, n),
                )
                return await importer.run(table.rows)


def _report(summary: ImportSummary, errors_path: Path) -> None:
    per_second = summary.rows / summary.seconds if summary.seconds > 0 else 0.0
    resumed = f" (resumed after row {summary.resumed_after})" if summary.resumed_after else ""
    out.print(
        f"read {summary.rows} rows{resumed} in {summary.seconds:.1f} s ({per_second:,.0f} rows/s):"
        f" {summary.published} published, {summary.duplicates} already on the stream,"
        f" {summary.error_rows} with errors",
        highlight=False,
    )
    if summary.error_rows:
        for error in summary.errors[:10]:
            err.print(f"  row {error.row}, {error.column}: {error.reason}", highlight=False)
        err.print(f"[yellow]{summary.error_rows} rows with errors: see {errors_path}[/]", highlight=False)
