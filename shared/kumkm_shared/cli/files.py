"""Every path a ``kumkm`` command reads or writes goes through here, so a bad one is reported the same way.

A missing file, a directory where a file is expected (or the reverse), a file the user may not read or
write, and text that is not UTF-8 all end the command with one line on stderr naming the problem and the
path, and exit code 2 (bad input, like a contract violation): never a traceback.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from collections.abc import Iterator

EXIT_BAD_PATH = 2
STDIN = "-"


def fail(message: str) -> NoReturn:
    """Print ``kumkm: message`` on stderr and exit 2."""
    typer.echo(f"kumkm: {message}", err=True)
    raise typer.Exit(EXIT_BAD_PATH)


def describe(exc: OSError, path: Path | str | None = None) -> str:
    """One sentence for an ``OSError`` on a path: what is wrong, then the path."""
    where = exc.filename if exc.filename is not None else path
    if isinstance(exc, FileNotFoundError):
        what = "file not found"
    elif isinstance(exc, IsADirectoryError):
        what = "is a directory, not a file"
    elif isinstance(exc, NotADirectoryError):
        what = "not found (a parent is not a directory)"
    elif isinstance(exc, FileExistsError):
        what = "exists and is not a directory"
    elif isinstance(exc, PermissionError):
        what = "permission denied"
    else:
        what = f"cannot use ({exc.strerror or exc})"
    return f"{what}: {where}"


@contextlib.contextmanager
def path_errors(path: Path | str | None = None) -> Iterator[None]:
    """Turn an ``OSError`` raised by the block into the one-line message and exit code 2."""
    try:
        yield
    except OSError as exc:
        fail(describe(exc, path))


def decode(raw: bytes, source: Path | str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        fail(f"not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start}): {source}")


def read_input(source: Path | str | None) -> str:
    """The UTF-8 text of ``source`` (``None`` or ``-``: stdin), or exit 2 saying what is wrong with it."""
    if source is None or str(source) == STDIN:
        return decode(sys.stdin.buffer.read(), "stdin")
    path = Path(source)
    with path_errors(path):
        raw = path.read_bytes()
    return decode(raw, path)


def write_output(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path``, or exit 2 saying why it cannot be written."""
    with path_errors(path):
        path.write_text(text, encoding="utf-8", newline="\n")


def ensure_directory(path: Path) -> Path:
    """Create ``path`` (and its parents) if needed, or exit 2 when it cannot be a directory."""
    if path.exists() and not path.is_dir():
        fail(f"not a directory: {path}")
    with path_errors(path):
        path.mkdir(parents=True, exist_ok=True)
    return path
