"""Reading a registry list row by row: CSV (stdlib ``csv``) or XLSX (openpyxl, read-only streaming).

Neither reader holds the file in memory: a CSV is read line by line, an XLSX sheet is streamed by openpyxl's
read-only mode (its rows parsed as they are reached), so the cost of a row does not grow with the file.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["SourceError", "Table", "file_sha256", "open_table"]

_SNIFF_BYTES: Final = 64 * 1024
_CHUNK: Final = 1 << 20


class SourceError(ValueError):
    """The file cannot be read as a list: not CSV or XLSX, no header row, unreadable."""


@dataclass
class Table:
    """A list's header row and its data rows, numbered as a spreadsheet numbers them (the header is 1)."""

    headers: list[str]
    rows: Iterator[tuple[int, list[Any]]]
    total: int | None  # data rows, estimated (None: unknown)
    close: Any


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _blank(cells: list[Any]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


@contextlib.contextmanager
def open_table(path: Path) -> Iterator[Table]:
    """The table in ``path``, by its suffix: ``.xlsx``/``.xlsm`` (first sheet) or anything else as CSV."""
    if path.suffix.lower() in {".xlsx", ".xlsm"}:
        with _xlsx(path) as table:
            yield table
    else:
        with _csv(path) as table:
            yield table


@contextlib.contextmanager
def _csv(path: Path) -> Iterator[Table]:
    try:
        with path.open("rb") as raw:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: raw.read(_CHUNK), b""))
        f = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror}") from None
    try:
        sample = f.read(_SNIFF_BYTES)
        f.seek(0)
        try:
            dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
        except csv.Error:
            dialect = csv.excel
        reader = csv.reader(f, dialect)
        try:
            header = next(reader)
        except StopIteration:
            raise SourceError(f"{path} is empty: no header row") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise SourceError(f"{path} is not a CSV file in UTF-8: {exc}") from None

        def rows() -> Iterator[tuple[int, list[Any]]]:
            try:
                for number, cells in enumerate(reader, start=2):
                    if not _blank(cells):
                        yield number, cells
            except (csv.Error, UnicodeDecodeError) as exc:
                raise SourceError(
                    f"{path}, after row {reader.line_num}: not readable as CSV: {exc}"
                ) from None

        yield Table([h.strip() for h in header], rows(), max(lines - 1, 0), f.close)
    finally:
        f.close()


@contextlib.contextmanager
def _xlsx(path: Path) -> Iterator[Table]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (OSError, InvalidFileException, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise SourceError(f"cannot read {path} as an XLSX workbook: {exc}") from None
    try:
        sheet = book.worksheets[0]
        stream = sheet.iter_rows(values_only=True)
        header: list[Any] | None = None
        first = 0
        for first, cells in enumerate(stream, start=1):  # noqa: B007 - the header's row number is kept
            if not _blank(list(cells)):
                header = list(cells)
                break
        if header is None:
            raise SourceError(f"{path}: the first sheet is empty: no header row")
        total = sheet.max_row - first if isinstance(sheet.max_row, int) else None

        def rows() -> Iterator[tuple[int, list[Any]]]:
            for number, cells in enumerate(stream, start=first + 1):
                values = list(cells)
                if not _blank(values):
                    yield number, values

        headers = ["" if h is None else str(h).strip() for h in header]
        yield Table(headers, rows(), total, book.close)
    finally:
        book.close()
