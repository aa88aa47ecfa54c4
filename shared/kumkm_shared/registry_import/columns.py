"""The columns of a registry list: the headers accepted (Indonesian and English) and the values.

Headers follow the cooperative registry's export (ODS / NIK, Kemenkop: "Nomor Induk Koperasi", "Nama
Koperasi", "Jenis", "Bentuk", "Status", "Jumlah Anggota", "Alamat", "Provinsi", "Kab/Kota", "Kecamatan") and
the OSS export for UMKM (NIB, skala usaha, KBLI). Matching ignores case, punctuation and extra spaces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from kumkm_shared.contracts.parties import (
    BusinessScale,
    BusinessStatus,
    CooperativeStatus,
    CooperativeType,
    RegisteredPartyKind,
    RevenueBand,
)

__all__ = [
    "COLUMNS",
    "IGNORED",
    "Column",
    "ImportKind",
    "canonical_columns",
    "detect_kind",
    "normalise",
]


class ImportKind(StrEnum):
    COOPERATIVE = "cooperative"
    UMKM = "umkm"
    ACTIVITY = "activity"


@dataclass(frozen=True, slots=True)
class Column:
    """One field of the events, the headers that name it, and whether a row must have it."""

    field: str
    headers: tuple[str, ...]
    required: bool = True


def normalise(text: str) -> str:
    """A header or a value for matching: lower case, punctuation as spaces, single spaces."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.casefold()).split())


_REGION: Final = (
    Column("province", ("provinsi", "propinsi", "province")),
    Column(
        "city", ("kab kota", "kabupaten kota", "kota kabupaten", "kabupaten", "kota", "city", "regency city")
    ),
    Column("district", ("kecamatan", "district", "subdistrict"), required=False),
    Column("code", ("kode wilayah", "kode daerah", "region code", "code"), required=False),
    Column("as_of", ("tanggal data", "per tanggal", "tanggal", "as of", "date"), required=False),
)

COLUMNS: Final[dict[ImportKind, tuple[Column, ...]]] = {
    ImportKind.COOPERATIVE: (
        Column(
            "cooperative_number",
            ("nomor induk koperasi", "no induk koperasi", "nik koperasi", "nik", "cooperative number"),
        ),
        Column("name", ("nama koperasi", "nama", "cooperative name", "name")),
        Column("cooperative_type", ("jenis koperasi", "jenis", "cooperative type", "type")),
        Column("status", ("status koperasi", "status"), required=False),
        Column("member_count", ("jumlah anggota", "anggota", "member count", "members")),
        *_REGION,
    ),
    ImportKind.UMKM: (
        Column("nib", ("nib", "nomor induk berusaha")),
        Column("name", ("nama usaha", "nama pelaku usaha", "nama", "business name", "name")),
        Column("scale", ("skala usaha", "skala", "business scale", "scale")),
        Column("kbli", ("kbli", "kode kbli", "kbli code", "sector")),
        Column("status", ("status usaha", "status"), required=False),
        *_REGION,
    ),
    ImportKind.ACTIVITY: (
        Column("party_kind", ("jenis pihak", "jenis pelaku", "party kind", "kind"), required=False),
        Column("party_id", ("nomor induk", "nomor induk koperasi", "nib", "id pihak", "party id", "id")),
        Column("operating", ("beroperasi", "masih beroperasi", "operating")),
        Column("revenue_band", ("kelas omzet", "omzet", "omset", "revenue band", "revenue")),
        Column("as_of", ("tanggal survei", "tanggal data", "tanggal", "as of", "date"), required=False),
        Column("survey", ("survei", "kode survei", "survey"), required=False),
    ),
}

# Columns of the export that no event carries: accepted and not published (an address is not in the
# contract; "bentuk" is primer/sekunder; "no" is the export's running number).
IGNORED: Final = frozenset(
    normalise(h)
    for h in (
        "bentuk",
        "bentuk koperasi",
        "form",
        "alamat",
        "address",
        "no",
        "nomor urut",
        "keterangan",
        "notes",
    )
)


def canonical_columns(kind: ImportKind, headers: list[str]) -> tuple[dict[str, int], list[str], list[str]]:
    """Each field's position in ``headers``, the required fields that are missing, and the headers that
    name nothing this kind knows (neither a field nor an ignored column)."""
    position: dict[str, int] = {}
    unknown: list[str] = []
    by_header = {normalise(h): c.field for c in COLUMNS[kind] for h in c.headers}
    for i, header in enumerate(headers):
        key = normalise(header)
        field = by_header.get(key)
        if field is not None and field not in position:
            position[field] = i
        elif field is None and key and key not in IGNORED:
            unknown.append(header)
    missing = [c.field for c in COLUMNS[kind] if c.required and c.field not in position]
    return position, missing, unknown


def detect_kind(headers: list[str]) -> ImportKind | None:
    """The kind of list whose required columns the headers hold (activity first: it has the fewest)."""
    keys = {normalise(h) for h in headers}
    if keys & {"beroperasi", "masih beroperasi", "operating"}:
        return ImportKind.ACTIVITY
    for kind in (ImportKind.COOPERATIVE, ImportKind.UMKM):
        if not canonical_columns(kind, headers)[1]:
            return kind
    return None


def _values(table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {normalise(alias): value for value, aliases in table.items() for alias in (value, *aliases)}


COOPERATIVE_TYPES: Final = _values(
    {
        CooperativeType.SAVINGS_AND_LOAN: (
            "simpan pinjam",
            "koperasi simpan pinjam",
            "ksp",
            "simpan pinjam dan pembiayaan syariah",
            "kspps",
            "savings and loan",
        ),
        CooperativeType.CONSUMER: ("konsumen", "koperasi konsumen"),
        CooperativeType.PRODUCER: ("produsen", "koperasi produsen"),
        CooperativeType.MARKETING: ("pemasaran", "koperasi pemasaran"),
        CooperativeType.SERVICES: ("jasa", "koperasi jasa"),
        CooperativeType.MULTIPURPOSE: ("serba usaha", "koperasi serba usaha", "ksu"),
        CooperativeType.MARKET_TRADERS: (
            "pedagang pasar",
            "koperasi pedagang pasar",
            "koppas",
            "market traders",
        ),
        CooperativeType.OTHER: ("lainnya", "lain lain"),
    }
)

# The registry's "Tidak Aktif" is a living cooperative that reported nothing lately: legally it exists, and
# whether it is productive is what the monitor measures from signals. Only a dissolution ends it.
COOPERATIVE_STATUSES: Final = _values(
    {
        CooperativeStatus.ACTIVE: ("aktif", "tidak aktif", "belum aktif", "inactive"),
        CooperativeStatus.DISSOLVED: ("bubar", "dibubarkan", "sudah bubar"),
    }
)

SCALES: Final = _values(
    {
        BusinessScale.MICRO: ("mikro", "usaha mikro"),
        BusinessScale.SMALL: ("kecil", "usaha kecil"),
        BusinessScale.MEDIUM: ("menengah", "usaha menengah"),
        BusinessScale.LARGE: ("besar", "usaha besar"),
    }
)

BUSINESS_STATUSES: Final = _values(
    {
        BusinessStatus.ACTIVE: ("aktif", "buka", "open"),
        BusinessStatus.CLOSED: ("tutup", "tidak aktif", "berhenti"),
    }
)

PARTY_KINDS: Final = _values(
    {
        RegisteredPartyKind.COOPERATIVE: ("koperasi",),
        RegisteredPartyKind.UMKM: ("usaha", "pelaku usaha", "ukm"),
    }
)

REVENUE_BANDS: Final = _values(
    {
        RevenueBand.NONE: ("tidak ada", "nihil", "0"),
        RevenueBand.UP_TO_300M: ("sd 300 juta", "s d 300 juta", "0 300 juta", "300 juta"),
        RevenueBand.FROM_300M_TO_2B: ("300 juta 2 miliar", "300 juta sd 2 miliar", "300 juta s d 2 miliar"),
        RevenueBand.FROM_2B_TO_15B: ("2 15 miliar", "2 miliar 15 miliar", "2 miliar sd 15 miliar"),
        RevenueBand.FROM_15B_TO_50B: ("15 50 miliar", "15 miliar 50 miliar", "15 miliar sd 50 miliar"),
        RevenueBand.OVER_50B: ("lebih dari 50 miliar", "di atas 50 miliar", "50 miliar"),
    }
)

YES: Final = frozenset({"ya", "y", "yes", "true", "1", "beroperasi", "aktif", "operating"})
NO: Final = frozenset({"tidak", "t", "no", "n", "false", "0", "tidak beroperasi", "tutup", "not operating"})
