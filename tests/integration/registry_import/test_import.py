"""``kumkm registry import`` on real NATS JetStream: CSV and XLSX lists become registry events, a re-import
publishes nothing new, an interrupted import resumes with every row exactly once, bad rows go to the error
file (docs/rules/registry-import.md)."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nats
import pytest
from openpyxl import Workbook

from kumkm_shared.contracts.regions import KOTA_BEKASI_DISTRICTS
from kumkm_shared.messaging.provision import provision
from kumkm_shared.registry_import.columns import ImportKind
from kumkm_shared.registry_import.rows import ParsedRow, RowParser
from kumkm_shared.registry_import.run import ImportState, state_path_for
from kumkm_shared.testing import wait_for

if TYPE_CHECKING:
    from collections.abc import Sequence

pytestmark = pytest.mark.integration

KUMKM = str(Path(sys.executable).parent / "kumkm")
ORG = "disdagkop-bekasi"
STREAM = "KUMKM_REGISTRY"
COOPERATIVE_HEADERS = [
    "No",
    "Nomor Induk Koperasi",
    "Nama Koperasi",
    "Jenis",
    "Bentuk",
    "Status",
    "Jumlah Anggota",
    "Alamat",
    "Provinsi",
    "Kab/Kota",
    "Kecamatan",
    "Tanggal Data",
]
TYPES = ("Simpan Pinjam", "Konsumen", "Produsen", "Pedagang Pasar", "Serba Usaha", "Jasa")


def cooperative_row(i: int) -> list[str]:
    district = KOTA_BEKASI_DISTRICTS[i % len(KOTA_BEKASI_DISTRICTS)]
    return [
        str(i),
        f"3275{i:012d}",
        f"Koperasi Bekasi {i}",
        TYPES[i % len(TYPES)],
        "Primer",
        "Aktif" if i % 17 else "Bubar",
        str(20 + i % 500),
        f"Jl. Contoh {i}",
        "JAWA BARAT",
        "KOTA BEKASI",
        district.name.upper(),
        "31/03/2021",
    ]


# Bad rows: (data row index, the cell to spoil, its value, the column the error file names).
BAD: dict[int, tuple[int, str, str]] = {
    3: (1, "32750000000003x", "Nomor Induk Koperasi"),
    10: (3, "Koperasi Bintang", "Jenis"),
    25: (6, "banyak", "Jumlah Anggota"),
}


def write_cooperatives(path: Path, count: int, bad: dict[int, tuple[int, str, str]] | None = None) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter=";")  # an Indonesian Excel's CSV
        writer.writerow(COOPERATIVE_HEADERS)
        for i in range(1, count + 1):
            row = cooperative_row(i)
            if bad and i in bad:
                cell, value, _ = bad[i]
                row[cell] = value
            writer.writerow(row)


def expected_events(path: Path, kind: ImportKind) -> dict[str, ParsedRow]:
    """Each valid row's event as the test computes it itself, by event id."""
    from kumkm_shared.registry_import.source import open_table

    with open_table(path) as table:
        parser = RowParser(kind, table.headers, organisation=ORG)
        parsed = [parser.parse(n, cells) for n, cells in table.rows]
    return {str(p.event_id): p for p in parsed if isinstance(p, ParsedRow)}


def environment(nats_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUMKM_")}
    env["KUMKM_NATS_URL"] = nats_url
    env["KUMKM_DATA_DIR"] = str(tmp_path / "nowhere")
    return env


def run_import(args: Sequence[str], nats_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUMKM, "registry", "import", *args],
        capture_output=True,
        text=True,
        env=environment(nats_url, tmp_path),
        check=False,
        timeout=120,
    )


async def provisioned(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        await provision(nc.jetstream())
    finally:
        await nc.drain()


async def stream_messages(nats_url: str) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """Every message on KUMKM_REGISTRY: subject, envelope, headers."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(STREAM)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            if info.state.messages == 0:
                break
            msg = await js.get_msg(STREAM, seq)
            out.append((msg.subject or "", json.loads(msg.data or b"{}"), dict(msg.headers or {})))
        return out
    finally:
        await nc.drain()


async def stream_count(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        return int((await nc.jetstream().stream_info(STREAM)).state.messages)
    finally:
        await nc.drain()


def read_errors(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


async def test_a_csv_list_becomes_registry_events_and_its_bad_rows_go_to_the_error_file(
    nats_url: str, tmp_path: Path
) -> None:
    await provisioned(nats_url)
    path = tmp_path / "koperasi-bekasi.csv"
    write_cooperatives(path, 40, BAD)
    result = run_import([str(path), "--as", ORG], nats_url, tmp_path)
    assert result.returncode == 1, "some rows had errors: " + result.stdout + result.stderr
    assert "37 published" in result.stdout, result.stdout

    expected = expected_events(path, ImportKind.COOPERATIVE)
    assert len(expected) == 37
    messages = await stream_messages(nats_url)
    assert len(messages) == 37
    for subject, envelope, headers in messages:
        assert subject == f"kumkm.registry.cooperative.registered.v1.{ORG}", "sent as the organisation"
        assert headers["Nats-Msg-Id"] == envelope["id"]
        mine = expected[envelope["id"]]
        assert type(mine.data).model_validate(envelope["data"]) == mine.data
        assert envelope["subject"] == mine.party_id
    tenth = next(e for _, e, _ in messages if e["data"]["cooperative_number"] == "3275000000000009")
    assert tenth["data"]["region"] == {
        "province": "Jawa Barat",
        "city": "Kota Bekasi",
        "district": KOTA_BEKASI_DISTRICTS[9].name,
        "code": KOTA_BEKASI_DISTRICTS[9].code,
    }
    assert tenth["data"]["cooperative_type"] == "market_traders"

    errors = read_errors(path.with_name(path.name + ".errors.csv"))
    assert errors[0] == ["row", "column", "reason"]
    # Spreadsheet rows: the header is row 1, data row i is row i + 1.
    assert [(int(r), c) for r, c, _ in errors[1:]] == [(i + 1, BAD[i][2]) for i in sorted(BAD)]
    reasons = {c: reason for _, c, reason in errors[1:]}
    assert "16 digits" in reasons["Nomor Induk Koperasi"]
    assert "Koperasi Bintang" in reasons["Jenis"]
    assert "whole number" in reasons["Jumlah Anggota"]
    state = ImportState.load(state_path_for(path))
    assert state.complete
    assert (state.last_row, state.published, state.error_rows) == (41, 37, 3)


async def test_an_xlsx_list_is_streamed_and_imported_like_a_csv(nats_url: str, tmp_path: Path) -> None:
    await provisioned(nats_url)
    path = tmp_path / "umkm-bekasi.xlsx"
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["NIB", "Business name", "Scale", "KBLI", "Status", "Province", "City", "District", "As of"])
    for i in range(1, 31):
        district = KOTA_BEKASI_DISTRICTS[i % 12].name
        sheet.append(
            [
                f"912{i:010d}",
                f"Warung {i}",
                ("Mikro", "Kecil", "Menengah")[i % 3],
                56101 if i != 7 else 561,  # row 8: a KBLI of 3 digits
                "Aktif",
                "Jawa Barat",
                "Kota Bekasi",
                district,
                datetime(2021, 3, 31),  # noqa: DTZ001 - spreadsheet dates have no zone
            ]
        )
    book.save(path)
    result = run_import([str(path), "--as", ORG], nats_url, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    messages = await stream_messages(nats_url)
    assert len(messages) == 29
    assert {s for s, _, _ in messages} == {f"kumkm.registry.umkm.registered.v1.{ORG}"}
    expected = expected_events(path, ImportKind.UMKM)
    assert {e["id"] for _, e, _ in messages} == set(expected)
    first = next(e for _, e, _ in messages if e["data"]["nib"] == "9120000000001")
    assert first["data"]["kbli"] == "56101"
    assert first["data"]["as_of"] == "2021-03-31"
    assert first["data"]["region"]["code"] == KOTA_BEKASI_DISTRICTS[1].code
    errors = read_errors(path.with_name(path.name + ".errors.csv"))
    assert errors[1][:2] == ["8", "KBLI"]


async def test_importing_the_same_file_again_publishes_no_new_event(nats_url: str, tmp_path: Path) -> None:
    await provisioned(nats_url)
    path = tmp_path / "koperasi.csv"
    write_cooperatives(path, 30)
    first = run_import([str(path), "--as", ORG], nats_url, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    before = await stream_messages(nats_url)
    assert len(before) == 30
    again = run_import([str(path), "--as", ORG], nats_url, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 published, 30 already on the stream" in again.stdout, again.stdout
    after = await stream_messages(nats_url)
    assert [e["id"] for _, e, _ in after] == [e["id"] for _, e, _ in before], "no new event, the same ids"
    # A copy of the file elsewhere (no state file beside it) is the same list: the same ids again.
    copy = tmp_path / "copy" / "koperasi.csv"
    copy.parent.mkdir()
    copy.write_bytes(path.read_bytes())
    third = run_import([str(copy), "--as", ORG], nats_url, tmp_path)
    assert "0 published, 30 already on the stream" in third.stdout, third.stdout
    assert await stream_count(nats_url) == 30
    # --resume of a complete import has nothing to do.
    done = run_import([str(path), "--as", ORG, "--resume"], nats_url, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "read 0 rows" in done.stdout
    assert await stream_count(nats_url) == 30


async def test_an_interrupted_import_resumes_and_every_row_is_on_the_stream_exactly_once(
    nats_url: str, tmp_path: Path
) -> None:
    await provisioned(nats_url)
    path = tmp_path / "koperasi-besar.csv"
    count = 600
    bad = {40: BAD[3], 500: BAD[25]}  # one before the interruption, one after
    write_cooperatives(path, count, bad)
    process = await asyncio.create_subprocess_exec(
        KUMKM,
        "registry",
        "import",
        str(path),
        "--as",
        ORG,
        "--rate",
        "300",
        env=environment(nats_url, tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    await wait_for(lambda: _at_least(nats_url, 200), timeout=30, message="200 rows on the stream")
    process.send_signal(signal.SIGKILL)  # no clean-up at all: the state file is what was last saved
    await process.wait()
    state_file = state_path_for(path)
    interrupted = ImportState.load(state_file)
    assert not interrupted.complete
    assert 1 < interrupted.last_row < count + 1, interrupted
    on_stream = await stream_count(nats_url)
    assert on_stream < count - len(bad), "the import was stopped before the end"

    resumed = run_import([str(path), "--as", ORG, "--resume"], nats_url, tmp_path)
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr  # the bad rows
    assert f"resumed after row {interrupted.last_row}" in resumed.stdout, resumed.stdout

    messages = await stream_messages(nats_url)
    ids = [e["id"] for _, e, _ in messages]
    expected = expected_events(path, ImportKind.COOPERATIVE)
    assert len(expected) == count - len(bad)
    assert len(ids) == len(set(ids)), "no row twice on the stream"
    assert set(ids) == set(expected), "every valid row once"
    state = ImportState.load(state_file)
    assert state.complete
    assert state.last_row == count + 1
    assert state.published + state.duplicates >= count - len(bad) - interrupted.published
    errors = read_errors(path.with_name(path.name + ".errors.csv"))
    assert [(int(r), c) for r, c, _ in errors[1:]] == [(i + 1, bad[i][2]) for i in sorted(bad)], (
        "each bad row once in the error file, the interrupted run's and the resumed run's"
    )
    assert errors[0] == ["row", "column", "reason"]


async def _at_least(nats_url: str, n: int) -> bool:
    try:
        return await stream_count(nats_url) >= n
    except Exception:
        return False


async def test_a_resume_of_a_changed_file_is_refused(nats_url: str, tmp_path: Path) -> None:
    await provisioned(nats_url)
    path = tmp_path / "koperasi.csv"
    write_cooperatives(path, 5)
    assert run_import([str(path), "--as", ORG], nats_url, tmp_path).returncode == 0
    write_cooperatives(path, 6)
    refused = run_import([str(path), "--as", ORG, "--resume"], nats_url, tmp_path)
    assert refused.returncode == 2
    assert "sha256" in refused.stderr
    missing = run_import(
        [str(path), "--as", ORG, "--kind", "umkm", "--as-of", "2021-01-01"], nats_url, tmp_path
    )
    assert missing.returncode == 2
    assert "lacks the umkm columns nib" in missing.stderr, missing.stderr
