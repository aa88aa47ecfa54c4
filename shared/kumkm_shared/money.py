"""Rupiah for people to read: one formatter, pure, for every message, template and reason text.

``Rp2.500.000.000`` in Indonesian, ``Rp2,500,000,000`` in English; sen only when there are any. Amounts are
``Decimal`` (or their decimal strings), never floats. Rounding money for arithmetic is a domain rule and
lives in the domain (loans' ``round_rupiah``), not here.
"""

from __future__ import annotations

from decimal import Decimal

__all__ = ["format_rupiah"]

_SEPARATORS = {"id": (".", ","), "en": (",", ".")}  # (thousands, decimal)


def format_rupiah(amount: Decimal | str | int, locale: str = "id_ID") -> str:
    value = Decimal(str(amount))
    thousands, decimal = _SEPARATORS.get(str(locale).split("_")[0].lower(), _SEPARATORS["id"])
    whole = value == value.to_integral_value()
    text = f"{abs(value):,.0f}" if whole else f"{abs(value):,.2f}"
    text = text.replace(",", "\0").replace(".", decimal).replace("\0", thousands)
    return f"-Rp{text}" if value < 0 else f"Rp{text}"
