"""Row parsing and validation of ``kumkm registry import`` (docs/rules/registry-import.md)."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from kumkm_shared.contracts.parties import (
    ActivityReported,
    BusinessScale,
    CooperativeRegistered,
    CooperativeStatus,
    CooperativeType,
    CooperativeUpdated,
    RegisteredPartyKind,
    RevenueBand,
    UmkmRegistered,
)
from kumkm_shared.registry_import.columns import ImportKind, canonical_columns, detect_kind
from kumkm_shared.registry_import.rows import ParsedRow, RowError, RowParser, event_id_for

pytestmark = pytest.mark.unit

ORG = "disdagkop-bekasi"
# The cooperative registry's export (ODS/NIK Kemenkop), as a city downloads it.
ODS_HEADERS = [
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
ODS_ROW = [
    "1",
    "3275100203040001",
    "Koperasi Pedagang Pasar Kranggan",
    "Pedagang Pasar",
    "Primer",
    "Aktif",
    "1.234",
    "Jl. Raya Kranggan",
    "JAWA BARAT",
    "KOTA BEKASI",
    "JATISAMPURNA",
    "31/03/2021",
]
ENGLISH_HEADERS = [
    "cooperative number",
    "name",
    "type",
    "status",
    "member count",
    "province",
    "city",
    "district",
    "as of",
]
UMKM_HEADERS = ["NIB", "Nama Usaha", "Skala Usaha", "KBLI", "Status", "Provinsi", "Kab/Kota", "Kecamatan"]
ACTIVITY_HEADERS = ["Nomor Induk", "Beroperasi", "Kelas Omzet", "Tanggal Survei", "Survei"]


def _parsed(result: ParsedRow | list[RowError]) -> ParsedRow:
    assert isinstance(result, ParsedRow), result
    return result


def _errors(result: ParsedRow | list[RowError]) -> list[tuple[int, str, str]]:
    assert isinstance(result, list), result
    return [(e.row, e.column, e.reason) for e in result]


def test_the_cooperative_registry_export_becomes_a_registered_cooperative() -> None:
    parser = RowParser(ImportKind.COOPERATIVE, ODS_HEADERS, organisation=ORG)
    assert parser.missing == []
    assert parser.unknown == [], "the export's other columns (No, Bentuk, Alamat) are known and ignored"
    row = _parsed(parser.parse(2, ODS_ROW))
    data = row.data
    assert isinstance(data, CooperativeRegistered)
    assert data.cooperative_number == "3275100203040001"
    assert data.cooperative_type is CooperativeType.MARKET_TRADERS
    assert data.status is CooperativeStatus.ACTIVE
    assert data.member_count == 1234, "1.234 is the Indonesian way of writing 1,234"
    assert data.region.model_dump(exclude_none=True) == {
        "province": "Jawa Barat",
        "city": "Kota Bekasi",
        "district": "Jatisampurna",
        "code": "32.75.10",
    }, "capitals as the registry writes them; Kota Bekasi's kecamatan get their official code"
    assert data.as_of == date(2021, 3, 31)
    assert row.party_id == "3275100203040001"


def test_english_headers_name_the_same_columns() -> None:
    parser = RowParser(ImportKind.COOPERATIVE, ENGLISH_HEADERS, organisation=ORG)
    row = _parsed(
        parser.parse(
            2,
            [
                "3275100203040001",
                "Koperasi Pedagang Pasar Kranggan",
                "market_traders",
                "active",
                "1234",
                "Jawa Barat",
                "Kota Bekasi",
                "Jatisampurna",
                "2021-03-31",
            ],
        )
    )
    indonesian = _parsed(RowParser(ImportKind.COOPERATIVE, ODS_HEADERS, organisation=ORG).parse(2, ODS_ROW))
    assert row.data == indonesian.data
    assert row.event_id == indonesian.event_id, "the same record is the same event, whatever the headers"


def test_the_event_id_is_deterministic_and_changes_with_the_record_and_the_organisation() -> None:
    parser = RowParser(ImportKind.COOPERATIVE, ODS_HEADERS, organisation=ORG)
    first = _parsed(parser.parse(2, ODS_ROW))
    again = _parsed(parser.parse(7, list(ODS_ROW)))
    assert first.event_id == again.event_id, "the row's position does not matter"
    changed = list(ODS_ROW)
    changed[6] = "1235"
    assert _parsed(parser.parse(2, changed)).event_id != first.event_id
    other = RowParser(ImportKind.COOPERATIVE, ODS_HEADERS, organisation="kemenkop-odsnik")
    assert _parsed(other.parse(2, ODS_ROW)).event_id != first.event_id
    updated = RowParser(ImportKind.COOPERATIVE, ODS_HEADERS, organisation=ORG, update=True)
    as_update = _parsed(updated.parse(2, ODS_ROW))
    assert isinstance(as_update.data, CooperativeUpdated)
    assert as_update.event_id != first.event_id
    assert event_id_for(ORG, first.data) == first.event_id


def test_every_bad_cell_of_a_row_is_named_with_its_column() -> None:
    parser = RowParser(ImportKind.COOPERATIVE, ODS_HEADERS, organisation=ORG)
    bad = list(ODS_ROW)
    bad[1] = "32751002030400"  # 14 digits
    bad[3] = "Koperasi Bintang"
    bad[6] = "banyak"
    bad[10] = "Cibubur"  # not a kecamatan of Kota Bekasi
    bad[11] = "kemarin"
    errors = _errors(parser.parse(5, bad))
    assert [(row, column) for row, column, _ in errors] == [
        (5, "Nomor Induk Koperasi"),
        (5, "Jenis"),
        (5, "Jumlah Anggota"),
        (5, "Kecamatan"),
        (5, "Tanggal Data"),
    ]
    reasons = {column: reason for _, column, reason in errors}
    assert "16 digits" in reasons["Nomor Induk Koperasi"]
    assert "Koperasi Bintang" in reasons["Jenis"]
    assert "whole number" in reasons["Jumlah Anggota"]
    assert "Cibubur" in reasons["Kecamatan"]
    assert "not a date" in reasons["Tanggal Data"]


def test_an_empty_required_cell_is_an_error_an_empty_optional_one_is_not() -> None:
    parser = RowParser(ImportKind.COOPERATIVE, ODS_HEADERS, organisation=ORG)
    row = list(ODS_ROW)
    row[2] = "  "
    row[5] = ""  # status: active by default
    row[10] = ""  # no kecamatan: the city's code
    assert _errors(parser.parse(3, row)) == [(3, "Nama Koperasi", "empty")]
    row[2] = "Koperasi Maju"
    data = _parsed(parser.parse(3, row)).data
    assert isinstance(data, CooperativeRegistered)
    assert data.status is CooperativeStatus.ACTIVE
    assert data.region.code == "32.75"
    assert data.region.district is None


def test_the_contract_decides_too_and_its_errors_name_the_column() -> None:
    parser = RowParser(ImportKind.COOPERATIVE, ODS_HEADERS, organisation=ORG)
    row = list(ODS_ROW)
    row[2] = "K" * 201  # a Name is at most 200 characters
    row[6] = "-3"
    errors = _errors(parser.parse(9, row))
    assert [column for _, column, _ in errors] == ["Nama Koperasi", "Jumlah Anggota"]


def test_a_sixteen_digit_number_stored_as_a_number_in_a_spreadsheet_is_refused() -> None:
    parser = RowParser(ImportKind.COOPERATIVE, ODS_HEADERS, organisation=ORG)
    row: list[object] = list(ODS_ROW)
    row[1] = 3275100203040001
    [(_, column, reason)] = _errors(parser.parse(2, row))
    assert column == "Nomor Induk Koperasi"
    assert "format the column as text" in reason


def test_spreadsheet_cells_numbers_and_dates_are_read_as_values() -> None:
    parser = RowParser(ImportKind.UMKM, UMKM_HEADERS, organisation=ORG, as_of=date(2021, 1, 1))
    data = _parsed(
        parser.parse(
            2, [9120001234567, "Warung Bu Siti", "Mikro", 56101, "Aktif", "Jawa Barat", "Kota Bekasi", None]
        )
    ).data
    assert isinstance(data, UmkmRegistered)
    assert (data.nib, data.kbli, data.scale) == ("9120001234567", "56101", BusinessScale.MICRO)
    assert data.as_of == date(2021, 1, 1), "--as-of for a list without a date column"
    coop = RowParser(ImportKind.COOPERATIVE, ODS_HEADERS, organisation=ORG)
    row: list[object] = list(ODS_ROW)
    row[6], row[11] = 1234.0, datetime(2021, 3, 31, 0, 0)  # noqa: DTZ001 - spreadsheet dates have no zone
    assert _parsed(coop.parse(2, row)).data.as_of == date(2021, 3, 31)  # type: ignore[attr-defined]


def test_without_a_date_column_or_as_of_the_list_is_refused_before_any_row() -> None:
    parser = RowParser(ImportKind.UMKM, UMKM_HEADERS, organisation=ORG)
    assert parser.missing == ["as_of"]


def test_activity_rows_take_the_party_kind_from_the_id_length() -> None:
    parser = RowParser(ImportKind.ACTIVITY, ACTIVITY_HEADERS, organisation=ORG)
    coop = _parsed(
        parser.parse(2, ["3275100203040001", "Ya", "s.d. 300 juta", "2021-03-31", "BEKASI-2021-Q1"])
    )
    assert isinstance(coop.data, ActivityReported)
    assert coop.data.party_kind is RegisteredPartyKind.COOPERATIVE
    assert coop.data.operating is True
    assert coop.data.revenue_band is RevenueBand.UP_TO_300M
    umkm = _parsed(parser.parse(3, ["9120001234567", "tidak", "none", "2021-03-31", ""]))
    assert isinstance(umkm.data, ActivityReported)
    assert (umkm.data.party_kind, umkm.data.operating, umkm.data.survey) == (
        RegisteredPartyKind.UMKM,
        False,
        None,
    )
    assert _errors(parser.parse(4, ["12345", "mungkin", "banyak", "2021-03-31", ""])) == [
        (4, "Nomor Induk", "must be 13 digits, got '12345'"),
        (4, "Beroperasi", "must be ya/tidak (yes/no), got 'mungkin'"),
        (
            4,
            "Kelas Omzet",
            (
                "unknown revenue band 'banyak' (one of: 15b_to_50b, 2b_to_15b, 300m_to_2b, none, over_50b,"
                " up_to_300m, or its Indonesian name)"
            ),
        ),
    ]


def test_the_kind_of_list_is_recognised_from_its_headers() -> None:
    assert detect_kind(ODS_HEADERS) is ImportKind.COOPERATIVE
    assert detect_kind(ENGLISH_HEADERS) is ImportKind.COOPERATIVE
    assert detect_kind(UMKM_HEADERS) is ImportKind.UMKM
    assert detect_kind(ACTIVITY_HEADERS) is ImportKind.ACTIVITY
    assert detect_kind(["foo", "bar"]) is None


def test_missing_and_unknown_columns_are_reported() -> None:
    _, missing, unknown = canonical_columns(ImportKind.UMKM, ["NIB", "Nama", "Warna", "Provinsi"])
    assert missing == ["scale", "kbli", "city"]
    assert unknown == ["Warna"]
