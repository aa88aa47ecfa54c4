"""One row of a registry list: its cells as event data, validated by the contract, or the row's errors.

Every problem names the row (as a spreadsheet numbers it: the header is row 1), the column (as the file
names it) and the reason; a row with any problem publishes nothing, and the other rows still go.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final

from pydantic import ValidationError

from kumkm_shared.contracts.parties import (
    ActivityReported,
    CooperativeRegistered,
    CooperativeUpdated,
    RegisteredPartyKind,
    UmkmRegistered,
    UmkmUpdated,
)
from kumkm_shared.contracts.regions import JAWA_BARAT, KOTA_BEKASI, KOTA_BEKASI_CODE, district_by_name
from kumkm_shared.registry_import import columns as col
from kumkm_shared.registry_import.columns import ImportKind, normalise

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kumkm_shared.contracts import EventData

__all__ = ["EVENT_NAMESPACE", "ParsedRow", "RowError", "RowParser", "event_id_for"]

# uuid5 namespace of imported events: the same fact from the same organisation is always the same event id.
EVENT_NAMESPACE: Final = uuid.UUID("0b7d5a52-3f3e-4c51-9a43-5a0f2f6d9e21")
_DATE_FORMATS: Final = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y")
_THOUSANDS: Final = re.compile(r"^\d{1,3}([.,]\d{3})+$")
# Excel keeps 15 significant digits: a 16-digit number typed as a number has lost its last digit.
_EXCEL_DIGITS: Final = 15


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    column: str
    reason: str


@dataclass(frozen=True, slots=True)
class ParsedRow:
    row: int
    data: EventData
    party_id: str
    event_id: uuid.UUID


class _CellError(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def event_id_for(organisation: str, data: EventData) -> uuid.UUID:
    """uuid5 over the organisation, the event type, the party and a hash of the whole record."""
    record = json.dumps(data.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(record.encode()).hexdigest()
    key = f"{organisation}\x1f{data.event_type}\x1f{data.aggregate_id()}\x1f{digest}"
    return uuid.uuid5(EVENT_NAMESPACE, key)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _digits(field: str, value: Any, length: int) -> str:
    """An identifier of ``length`` digits; from a spreadsheet number too, unless Excel has rounded it."""
    if isinstance(value, bool):
        raise _CellError(field, f"must be {length} digits, got {value!r}")
    if isinstance(value, int | float):
        if length > _EXCEL_DIGITS:
            raise _CellError(
                field,
                f"a {length}-digit number stored as a number loses digits in a spreadsheet (it keeps 15):"
                " format the column as text and export again",
            )
        value = _text(value)
    text = re.sub(r"[\s.\-]", "", _text(value))
    if not re.fullmatch(rf"\d{{{length}}}", text):
        raise _CellError(field, f"must be {length} digits, got {_text(value)!r}")
    return text


def _choice(field: str, value: Any, table: dict[str, str], what: str) -> str:
    key = normalise(_text(value))
    found = table.get(key)
    if found is None:
        known = ", ".join(sorted(set(table.values())))
        raise _CellError(field, f"unknown {what} {_text(value)!r} (one of: {known}, or its Indonesian name)")
    return found


def _count(field: str, value: Any) -> int:
    if isinstance(value, bool):
        raise _CellError(field, f"must be a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise _CellError(field, f"must be a whole number, got {value!r}")
        return int(value)
    text = _text(value).replace(" ", "")
    if _THOUSANDS.fullmatch(text):  # 1.234 (Indonesian) or 1,234
        text = re.sub(r"[.,]", "", text)
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise _CellError(field, f"must be a whole number, got {_text(value)!r}") from None
    if number != number.to_integral_value():
        raise _CellError(field, f"must be a whole number, got {_text(value)!r}")
    return int(number)


def _date(field: str, value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _text(value)
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()  # noqa: DTZ007 - a calendar date, no time of day
        except ValueError:
            continue
    raise _CellError(field, f"not a date: {text!r} (YYYY-MM-DD or DD/MM/YYYY)")


def _flag(field: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    key = normalise(_text(value))
    if key in col.YES:
        return True
    if key in col.NO:
        return False
    raise _CellError(field, f"must be ya/tidak (yes/no), got {_text(value)!r}")


def _place(value: Any) -> str:
    """A region name; one written all in capitals (``KOTA BEKASI``) as the registry's names are written."""
    text = " ".join(_text(value).split())
    if text.isupper():
        text = " ".join(w if w in {"DKI", "DI", "NTB", "NTT"} else w.capitalize() for w in text.split())
    return text


class RowParser:
    """Turns the cells of one kind of list into events of one organisation.

    ``headers`` are the file's header row; ``update`` publishes ``updated`` instead of ``registered``;
    ``as_of`` is the date of rows without a date column (``--as-of``).
    """

    def __init__(
        self,
        kind: ImportKind,
        headers: Sequence[str],
        *,
        organisation: str,
        update: bool = False,
        as_of: date | None = None,
    ) -> None:
        self.kind = kind
        self.headers = list(headers)
        self.organisation = organisation
        self.position, self.missing, self.unknown = col.canonical_columns(kind, self.headers)
        if as_of is None and "as_of" not in self.position:
            self.missing.append("as_of")
        self.as_of = as_of
        self.model: type[EventData]
        if kind is ImportKind.COOPERATIVE:
            self.model = CooperativeUpdated if update else CooperativeRegistered
        elif kind is ImportKind.UMKM:
            self.model = UmkmUpdated if update else UmkmRegistered
        else:
            self.model = ActivityReported

    def column(self, field: str) -> str:
        """The file's header for ``field`` (the field's first header when the file has none)."""
        at = self.position.get(field)
        if at is not None:
            return self.headers[at]
        return (
            next(c.headers[0] for c in col.COLUMNS[self.kind] if c.field == field)
            if field != "as_of"
            else "as_of"
        )

    def _cell(self, cells: Sequence[Any], field: str) -> Any:
        at = self.position.get(field)
        if at is None or at >= len(cells):
            return None
        value = cells[at]
        return None if isinstance(value, str) and not value.strip() else value

    def parse(self, row: int, cells: Sequence[Any]) -> ParsedRow | list[RowError]:
        errors: list[RowError] = []
        try:
            data = self._data(cells, errors)
        except _CellError as exc:  # pragma: no cover - _data collects cell errors
            return [RowError(row, self.column(exc.field), exc.reason)]
        if errors:
            return [RowError(row, e.column, e.reason) for e in errors]
        try:
            event = self.model.model_validate(data)
        except ValidationError as exc:
            return [self._contract_error(row, e) for e in exc.errors()]
        return ParsedRow(row, event, event.aggregate_id(), event_id_for(self.organisation, event))

    def _contract_error(self, row: int, error: Any) -> RowError:
        loc = [str(p) for p in error.get("loc", ())]
        field = loc[1] if loc[:1] == ["region"] and len(loc) > 1 else (loc[0] if loc else "")
        return RowError(row, self.column(field) if field else "", str(error.get("msg", "invalid")))

    def _data(self, cells: Sequence[Any], errors: list[RowError]) -> dict[str, Any]:
        data: dict[str, Any] = {}
        required = {c.field for c in col.COLUMNS[self.kind] if c.required}

        def take(field: str, convert: Any) -> None:
            value = self._cell(cells, field)
            if value is None:
                if field in required:
                    errors.append(RowError(0, self.column(field), "empty"))
                return
            try:
                data[field] = convert(field, value)
            except _CellError as exc:
                errors.append(RowError(0, self.column(field), exc.reason))

        if self.kind is ImportKind.COOPERATIVE:
            take("cooperative_number", lambda f, v: _digits(f, v, 16))
            take("name", lambda _f, v: _text(v))
            take("cooperative_type", lambda f, v: _choice(f, v, col.COOPERATIVE_TYPES, "cooperative type"))
            take("status", lambda f, v: _choice(f, v, col.COOPERATIVE_STATUSES, "status"))
            take("member_count", _count)
        elif self.kind is ImportKind.UMKM:
            take("nib", lambda f, v: _digits(f, v, 13))
            take("name", lambda _f, v: _text(v))
            take("scale", lambda f, v: _choice(f, v, col.SCALES, "scale"))
            take("kbli", lambda f, v: _digits(f, v, 5))
            take("status", lambda f, v: _choice(f, v, col.BUSINESS_STATUSES, "status"))
        else:
            self._activity(cells, data, errors, take)
        if self.kind is not ImportKind.ACTIVITY:
            self._region(cells, data, errors)
        take("as_of", _date)
        if "as_of" not in data and self.as_of is not None and self._cell(cells, "as_of") is None:
            data["as_of"] = self.as_of
        elif "as_of" not in data and not any(e.column == self.column("as_of") for e in errors):
            errors.append(RowError(0, self.column("as_of"), "empty, and no --as-of was given"))
        return data

    def _activity(
        self, cells: Sequence[Any], data: dict[str, Any], errors: list[RowError], take: Any
    ) -> None:
        take("party_kind", lambda f, v: _choice(f, v, col.PARTY_KINDS, "party kind"))
        raw = self._cell(cells, "party_id")
        if raw is None:
            errors.append(RowError(0, self.column("party_id"), "empty"))
        else:
            length = len(re.sub(r"[\s.\-]", "", _text(raw)))
            kind = data.get("party_kind")
            if kind is None:  # by the id's length: 16 digits a cooperative, 13 a UMKM
                kind = RegisteredPartyKind.COOPERATIVE if length == 16 else RegisteredPartyKind.UMKM  # noqa: PLR2004
                data["party_kind"] = kind
            try:
                data["party_id"] = _digits(
                    "party_id", raw, 16 if kind == RegisteredPartyKind.COOPERATIVE else 13
                )
            except _CellError as exc:
                errors.append(RowError(0, self.column("party_id"), exc.reason))
        take("operating", _flag)
        take("revenue_band", lambda f, v: _choice(f, v, col.REVENUE_BANDS, "revenue band"))
        take("survey", lambda _f, v: _text(v))

    def _region(self, cells: Sequence[Any], data: dict[str, Any], errors: list[RowError]) -> None:
        region: dict[str, Any] = {}
        for field in ("province", "city", "district"):
            value = self._cell(cells, field)
            if value is not None:
                region[field] = _place(value)
            elif field != "district":
                errors.append(RowError(0, self.column(field), "empty"))
        code = self._cell(cells, "code")
        if code is not None:
            region["code"] = _text(code)
        elif (region.get("province"), region.get("city")) == (JAWA_BARAT, KOTA_BEKASI):
            # Kota Bekasi's kecamatan and their official codes are known: fill the code, check the name.
            district = region.get("district")
            if district is None:
                region["code"] = KOTA_BEKASI_CODE
            else:
                found = district_by_name(str(district))
                if found is None:
                    errors.append(
                        RowError(0, self.column("district"), f"not a kecamatan of Kota Bekasi: {district!r}")
                    )
                else:
                    region["district"], region["code"] = found.name, found.code
        data["region"] = region
