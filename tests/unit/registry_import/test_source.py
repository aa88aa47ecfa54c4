"""Reading a list: CSV with either separator and a BOM, XLSX streamed, rows numbered as a spreadsheet does."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import pytest
from openpyxl import Workbook

from kumkm_shared.registry_import.source import SourceError, file_sha256, open_table

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("separator", [",", ";", "\t"])
def test_a_csv_is_read_with_its_separator_and_without_its_bom(tmp_path: Path, separator: str) -> None:
    path = tmp_path / "list.csv"
    lines = (
        ["NIB", "Nama Usaha", "Kab/Kota"],
        ["9120001234567", "Warung, Bu Siti", "Kota Bekasi"],
        ["", "", ""],
    )
    text = "\n".join(separator.join(f'"{c}"' if "," in c else c for c in line) for line in lines)
    path.write_text("\ufeff" + text + "\n9120001234568" + separator + "Toko" + separator + "Kota Bekasi\n")
    with open_table(path) as table:
        assert table.headers == ["NIB", "Nama Usaha", "Kab/Kota"]
        rows = list(table.rows)
    assert rows == [
        (2, ["9120001234567", "Warung, Bu Siti", "Kota Bekasi"]),
        (4, ["9120001234568", "Toko", "Kota Bekasi"]),
    ], "a blank row is skipped, and the numbers stay those of the spreadsheet"


def test_an_xlsx_sheet_is_streamed_from_its_first_non_empty_row(tmp_path: Path) -> None:
    path = tmp_path / "list.xlsx"
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append([None, None])
    sheet.append(["NIB", "Tanggal"])
    sheet.append([9120001234567, datetime(2021, 3, 31)])  # noqa: DTZ001 - spreadsheet dates have no zone
    book.save(path)
    with open_table(path) as table:
        assert table.headers == ["NIB", "Tanggal"]
        assert list(table.rows) == [(3, [9120001234567, datetime(2021, 3, 31)])]  # noqa: DTZ001 - spreadsheet dates have no zone


def test_an_empty_or_unreadable_file_is_a_source_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(SourceError, match="no header row"), open_table(empty):
        pass
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"not a zip")
    with pytest.raises(SourceError, match="XLSX"), open_table(broken):
        pass
    assert len(file_sha256(empty)) == 64
