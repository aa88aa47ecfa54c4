"""``kumkm schemas``: export and check the event JSON Schemas in ``docs/events/``."""

import sys
from pathlib import Path
from typing import Annotated, Final

import typer

from kumkm_shared.cli.files import ensure_directory, fail, path_errors, read_input, write_output

app = typer.Typer(help="Event JSON Schemas (docs/events) and the event catalog.", no_args_is_help=True)

DEFAULT_DIR: Final = Path("docs/events")

DirArgument = Annotated[Path, typer.Argument(help="Directory holding the exported schemas", file_okay=False)]


@app.command("export")
def export(directory: DirArgument = DEFAULT_DIR) -> None:
    """Write one JSON Schema per event type, envelope.json and README.md into DIRECTORY."""
    from kumkm_shared.contracts.schemas import export_schemas

    with path_errors():
        changed = export_schemas(ensure_directory(directory))
    if not changed:
        print(f"{directory}: up to date")
        return
    for name in changed:
        state = "written" if (directory / name).exists() else "removed"
        print(f"{state}: {directory / name}")


@app.command("check")
def check(directory: DirArgument = DEFAULT_DIR) -> None:
    """Exit 1 when DIRECTORY differs from the contracts (missing, stale or extra files)."""
    from kumkm_shared.contracts.schemas import diff_schemas, render_schemas

    with path_errors(directory):
        stale = diff_schemas(directory)
    if not stale:
        print(f"{directory}: {len(render_schemas())} files up to date")
        return
    rendered = render_schemas()
    for name in stale:
        if name not in rendered:
            state = "extra"
        elif (directory / name).exists():
            state = "stale"
        else:
            state = "missing"
        print(f"{state}: {directory / name}", file=sys.stderr)
    print("run `kumkm schemas export` to regenerate", file=sys.stderr)
    raise typer.Exit(code=1)


@app.command("catalog")
def catalog() -> None:
    """Print the event catalog as a Markdown table."""
    from kumkm_shared.contracts.schemas import render_catalog_markdown

    print(render_catalog_markdown(), end="")


@app.command("readme")
def readme(
    path: Annotated[Path, typer.Argument(help="the README holding the catalog markers")] = Path("README.md"),
    check_only: Annotated[bool, typer.Option("--check", help="exit 1 when the block is stale")] = False,
) -> None:
    """Regenerate the event catalog block of the README from the contracts."""
    from kumkm_shared.contracts.schemas import CATALOG_BEGIN, CATALOG_END, with_catalog_block

    text = read_input(path)
    try:
        fresh = with_catalog_block(text)
    except ValueError:
        fail(f"no event catalog markers ({CATALOG_BEGIN} ... {CATALOG_END}): {path}")
    if fresh == text:
        print(f"{path}: event catalog up to date")
        return
    if check_only:
        print(f"{path}: event catalog is stale; run `kumkm schemas readme`", file=sys.stderr)
        raise typer.Exit(code=1)
    write_output(path, fresh)
    print(f"{path}: event catalog regenerated")
