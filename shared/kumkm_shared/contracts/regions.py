"""Official region codes (Kemendagri, Permendagri 72/2019) for the regions the platform holds.

A ``Region`` may carry the code of its most specific level: ``"32"`` a province, ``"32.75"`` a city
(kabupaten/kota), ``"32.75.10"`` a district (kecamatan). The table below is the reference for Kota Bekasi,
the city whose recovery target the monitor follows first; other regions carry names only until their codes
are added here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "JAWA_BARAT",
    "KOTA_BEKASI",
    "KOTA_BEKASI_CODE",
    "KOTA_BEKASI_DISTRICTS",
    "REGION_CODE_PATTERN",
    "District",
    "district_by_name",
]

REGION_CODE_PATTERN: Final = r"^\d{2}(\.\d{2}(\.\d{2}(\.\d{4})?)?)?$"
"""Province ``32``, city ``32.75``, district ``32.75.10``, village ``32.75.10.1001``."""

JAWA_BARAT: Final = "Jawa Barat"
KOTA_BEKASI: Final = "Kota Bekasi"
KOTA_BEKASI_CODE: Final = "32.75"


@dataclass(frozen=True, slots=True)
class District:
    """A kecamatan: its official code and name."""

    code: str
    name: str


KOTA_BEKASI_DISTRICTS: Final[tuple[District, ...]] = (
    District("32.75.01", "Bekasi Timur"),
    District("32.75.02", "Bekasi Barat"),
    District("32.75.03", "Bekasi Utara"),
    District("32.75.04", "Bekasi Selatan"),
    District("32.75.05", "Rawalumbu"),
    District("32.75.06", "Medan Satria"),
    District("32.75.07", "Bantar Gebang"),
    District("32.75.08", "Pondok Gede"),
    District("32.75.09", "Jatiasih"),
    District("32.75.10", "Jatisampurna"),  # Pasar Kranggan is here
    District("32.75.11", "Mustika Jaya"),
    District("32.75.12", "Pondok Melati"),
)

_BY_NAME: Final = {district.name.casefold(): district for district in KOTA_BEKASI_DISTRICTS}


def district_by_name(name: str) -> District | None:
    """The Kota Bekasi kecamatan of that name (case-insensitive, with or without "Kecamatan "), or None."""
    text = name.strip().casefold().removeprefix("kecamatan ").strip()
    return _BY_NAME.get(text)
