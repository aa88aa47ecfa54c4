"""Reusable annotated types for event contracts.

Every validator raises a ``PydanticCustomError`` whose message names the rule that failed, for example
``NIB must be exactly 13 digits, got 12``. Decimal quantities (money, rates, percentages) never accept
floats: they are sent as decimal strings (or integers) and serialised to JSON as strings.
"""

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Final, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "AnnualRate",
    "BusinessDate",
    "Collectibility",
    "CooperativeNumber",
    "Email",
    "HttpsUrl",
    "Identifier",
    "Money",
    "Name",
    "Nib",
    "NonEmptyStr",
    "Npwp",
    "Percent",
    "PhoneE164",
    "PositiveMoney",
    "ReasonCode",
    "Region",
    "RequiredText",
    "Text",
    "UtcDateTime",
    "Whole",
    "validate_cooperative_number",
    "validate_nib",
    "validate_npwp",
    "validate_phone",
    "validate_text",
]

# --------------------------------------------------------------------------------------------------
# decimals

_MAX_SHOWN: Final = 80
_CENT: Final = Decimal("0.01")
_MONEY_LIMIT: Final = Decimal(10) ** 18  # far above any real amount; keeps quantize() inside the context
_DECIMAL_STRING: Final = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


def _fail(error_type: str, template: str, /, **values: Any) -> PydanticCustomError:
    """A validation error whose message is ``template`` formatted with ``values`` (``!r`` allowed)."""
    shown = {key: _shorten(value) for key, value in values.items()}
    return PydanticCustomError(error_type, template.format(**shown))


def _shorten(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_SHOWN:
        return value[: _MAX_SHOWN - 3] + "..."
    return value


def _to_decimal(value: Any, what: str) -> Decimal:
    """Turn a string, int or Decimal into a finite Decimal; refuse floats and everything else."""
    if isinstance(value, bool):
        raise _fail(
            "decimal_type", '{what} must be a decimal string such as "125000.00", got a boolean', what=what
        )
    if isinstance(value, float):
        raise _fail(
            "decimal_float",
            '{what} must not be a float (got {value!r}); send it as a decimal string such as "{example}"',
            what=what,
            value=value,
            example=f"{value:.2f}" if what == "Money" else str(value),
        )
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        if not _DECIMAL_STRING.match(text):
            raise _fail(
                "decimal_parsing",
                '{what} must be a plain decimal string such as "125000.00", got {value!r}',
                what=what,
                value=value,
            )
        try:
            result = Decimal(text)
        except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid literals
            raise _fail(
                "decimal_parsing", "{what} is not a decimal number: {value!r}", what=what, value=value
            ) from exc
    else:
        raise _fail(
            "decimal_type",
            '{what} must be a decimal string such as "125000.00", got {kind}',
            what=what,
            kind=type(value).__name__,
        )
    if not result.is_finite():
        raise _fail("decimal_finite", "{what} must be a finite number", what=what)
    return result


def _whole_number(value: Any) -> Any:
    """A float with no fraction as the int it is (JSON Schema counts ``3.0`` as an integer); everything
    else as it came, for the strict int validation that follows to judge."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Whole: Final = BeforeValidator(_whole_number)
"""Put after a strict ``int``'s ``Field`` (so the schema keeps its bounds):
``Annotated[int, Field(ge=1, strict=True), Whole]`` accepts ``3`` and ``3.0``, never ``"3"``, ``3.5`` or
``true``."""


def _decimal_places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # noqa: S101 - finite decimals have an int exponent
    return max(0, -exponent)


def _parse_money(value: Any) -> Decimal:
    amount = _to_decimal(value, "Money")
    if amount < 0:
        raise _fail("money_negative", "Money must not be negative, got {value}", value=str(amount))
    if amount >= _MONEY_LIMIT:
        raise _fail("money_too_large", "Money must be below 10^18 rupiah, got {value}", value=str(amount))
    if _decimal_places(amount) > 2:  # noqa: PLR2004
        raise _fail(
            "money_precision", "Money must have at most 2 decimal places, got {value}", value=str(amount)
        )
    return amount.quantize(_CENT) if amount else Decimal("0.00")


def _check_positive_money(amount: Decimal) -> Decimal:
    if amount <= 0:
        raise _fail("money_not_positive", "amount must be greater than 0, got {value}", value=str(amount))
    return amount


def _money_to_json(amount: Decimal) -> str:
    return f"{amount:.2f}"


def _decimal_to_json(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


_MONEY_SCHEMA: Final[dict[str, Any]] = {
    "type": "string",
    "pattern": r"^\d{1,18}(\.\d{1,2})?$",
    "description": "Rupiah amount as a decimal string with at most 2 decimal places (never a float).",
    "examples": ["125000.00"],
}

Money = Annotated[
    Decimal,
    BeforeValidator(_parse_money),
    PlainSerializer(_money_to_json, return_type=str, when_used="json"),
    WithJsonSchema(_MONEY_SCHEMA),
]
"""Rupiah amount: ``Decimal``, >= 0, at most 2 decimal places, JSON ``"125000.00"``. Floats are refused."""

PositiveMoney = Annotated[
    Decimal,
    BeforeValidator(_parse_money),
    AfterValidator(_check_positive_money),
    PlainSerializer(_money_to_json, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            **_MONEY_SCHEMA,
            # Not zero: a whole part with a digit 1-9 in it, or 0.01 to 0.99.
            "pattern": r"^(0*[1-9]\d{0,17}(\.\d{1,2})?|0+\.(0[1-9]|[1-9]\d?))$",
            "description": "Rupiah amount greater than 0, as a decimal string.",
        }
    ),
]
"""Rupiah amount greater than 0."""

_RATE_MAX_PLACES: Final = 8
_PERCENT_MAX_PLACES: Final = 4


def _parse_rate(value: Any) -> Decimal:
    rate = _to_decimal(value, "AnnualRate")
    if not Decimal(0) <= rate <= Decimal(1):
        raise _fail(
            "rate_range",
            'AnnualRate is a yearly fraction and must be between 0 and 1 ("0.06" means 6%), got {value}',
            value=str(rate),
        )
    if _decimal_places(rate) > _RATE_MAX_PLACES:
        raise _fail(
            "rate_precision", "AnnualRate must have at most 8 decimal places, got {value}", value=str(rate)
        )
    return rate


def _parse_percent(value: Any) -> Decimal:
    pct = _to_decimal(value, "Percent")
    if not Decimal(0) <= pct <= Decimal(100):
        raise _fail("percent_range", "Percent must be between 0 and 100, got {value}", value=str(pct))
    if _decimal_places(pct) > _PERCENT_MAX_PLACES:
        raise _fail(
            "percent_precision", "Percent must have at most 4 decimal places, got {value}", value=str(pct)
        )
    return pct


AnnualRate = Annotated[
    Decimal,
    BeforeValidator(_parse_rate),
    PlainSerializer(_decimal_to_json, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(0(\.\d{1,8})?|1(\.0{1,8})?|\.\d{1,8})$",
            "description": 'Annual interest rate as a fraction per year, a decimal string: "0.06" means 6%.',
            "examples": ["0.06"],
        }
    ),
]
"""Annual interest rate as a fraction (``"0.06"`` = 6% a year), 0 <= r <= 1."""

Percent = Annotated[
    Decimal,
    BeforeValidator(_parse_percent),
    PlainSerializer(_decimal_to_json, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(100(\.0{1,4})?|\d{1,2}(\.\d{1,4})?)$",  # 0 to 100, as the validator
            "description": "Percentage between 0 and 100 as a decimal string.",
            "examples": ["40", "25.5"],
        }
    ),
]
"""Percentage 0..100 as a decimal (``"25.5"``)."""

# --------------------------------------------------------------------------------------------------
# Indonesian identifiers

_NON_DIGITS: Final = re.compile(r"\D")
_NPWP_PUNCTUATION: Final = re.compile(r"[.\-\s]")
_PHONE_PUNCTUATION: Final = re.compile(r"[\s\-().]")


def _require_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise _fail(
            "identifier_type",
            "{what} must be a string of digits (leading zeros matter), got {kind}",
            what=what,
            kind=type(value).__name__,
        )
    return value.strip()


def _check_digits(text: str, what: str, lengths: tuple[int, ...]) -> str:
    bad = _NON_DIGITS.search(text)
    if bad:
        raise _fail(
            "identifier_digits",
            "{what} must contain digits only, found {char!r} in {value!r}",
            what=what,
            char=bad.group(),
            value=text,
        )
    if len(text) not in lengths:
        expected = " or ".join(str(n) for n in lengths)
        raise _fail(
            "identifier_length",
            "{what} must be exactly {expected} digits, got {length}",
            what=what,
            expected=expected,
            length=len(text),
        )
    return text


def validate_nib(value: Any) -> str:
    return _check_digits(_require_str(value, "NIB"), "NIB", (13,))


def validate_cooperative_number(value: Any) -> str:
    what = "Cooperative number (NIK koperasi)"
    return _check_digits(_require_str(value, what), what, (16,))


def validate_npwp(value: Any) -> str:
    text = _NPWP_PUNCTUATION.sub("", _require_str(value, "NPWP"))
    return _check_digits(text, "NPWP", (15, 16))


def validate_phone(value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(
            "phone_type",
            'phone number must be a string such as "+628123456789", got {kind}',
            kind=type(value).__name__,
        )
    text = _PHONE_PUNCTUATION.sub("", value.strip())
    if text.startswith("08"):
        text = "+62" + text[1:]
    if not text.startswith("+62"):
        raise _fail(
            "phone_prefix",
            "phone number must be Indonesian E.164, starting with +62 (or 08), got {value!r}",
            value=value,
        )
    rest = text[3:]
    if not rest.isdigit() or not rest.isascii():
        raise _fail(
            "phone_digits", "phone number must contain only digits after +62, got {value!r}", value=value
        )
    if rest.startswith("0"):
        raise _fail(
            "phone_trunk_zero", "phone number must not have a 0 after +62, got {value!r}", value=value
        )
    if not 8 <= len(rest) <= 13:  # noqa: PLR2004
        raise _fail(
            "phone_length", "phone number must have 8 to 13 digits after +62, got {length}", length=len(rest)
        )
    return text


Nib = Annotated[
    str,
    BeforeValidator(validate_nib),
    WithJsonSchema(
        {"type": "string", "pattern": r"^\d{13}$", "description": "NIB (Nomor Induk Berusaha): 13 digits."}
    ),
]
"""NIB business identifier: exactly 13 digits."""

CooperativeNumber = Annotated[
    str,
    BeforeValidator(validate_cooperative_number),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\d{16}$",
            "description": "Cooperative registration number (NIK koperasi): 16 digits.",
        }
    ),
]
"""Cooperative registration number (NIK koperasi): exactly 16 digits."""

Npwp = Annotated[
    str,
    BeforeValidator(validate_npwp),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[.\-\s]*(\d[.\-\s]*){15,16}$",
            "description": "NPWP tax id: 15 or 16 digits; punctuation such as 01.234.567.8-901.000 "
            "is accepted and normalised to digits.",
        }
    ),
]
"""NPWP tax id: 15 or 16 digits after removing ``.``, ``-`` and spaces."""

_P: Final = r"[\s\-().]*"  # the punctuation validate_phone removes
_PHONE_PATTERN: Final = rf"^{_P}(\+{_P}6{_P}2{_P}[1-9]|0{_P}8)({_P}[0-9]){{7,12}}{_P}$"

PhoneE164 = Annotated[
    str,
    BeforeValidator(validate_phone),
    WithJsonSchema(
        {
            "type": "string",
            # validate_phone's rules: punctuation anywhere; +62 then 8 to 13 digits, the first not 0; or
            # 08 and 7 to 12 more digits.
            "pattern": _PHONE_PATTERN,
            "description": "Indonesian phone number in E.164 (+62 then 8 to 13 digits); "
            "08... is normalised to +628...",
            "examples": ["+6281234567890"],
        }
    ),
]
"""Indonesian E.164 phone number ``+62`` + 8..13 digits; ``08…`` is normalised to ``+628…``."""

# --------------------------------------------------------------------------------------------------
# strings, ids, codes

_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")


def validate_text(value: str) -> str:
    """Refuse what no store can hold: the NUL character (Postgres text and jsonb refuse it) and a lone
    UTF-16 surrogate (``"\\ud800"`` in JSON, which has no UTF-8 encoding)."""
    bad = _UNSTORABLE.search(value)
    if bad is None:
        return value
    if bad.group() == "\x00":
        raise _fail("text_nul", "text must not contain the NUL character (U+0000)")
    raise _fail(
        "text_surrogate", "text must not contain a lone surrogate, got U+{code:04X}", code=ord(bad.group())
    )


# The pattern of text that must not be empty once trimmed: one character that is neither whitespace (what
# the trimming removes) nor NUL, and no NUL anywhere (``validate_text``).
_WHITESPACE: Final = "\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
VISIBLE_TEXT: Final = f"^[^\\x00]*[^\\x00{_WHITESPACE}][^\\x00]*$"
_VISIBLE: Final = Field(json_schema_extra={"pattern": VISIBLE_TEXT})

NonEmptyStr = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(validate_text), _VISIBLE
]
"""A string that is not empty after trimming whitespace."""

Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(validate_text),
    _VISIBLE,
]
"""A human name or title: 1..200 characters."""

Text = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=4000), AfterValidator(validate_text)
]
"""Free text (may be empty), at most 4000 characters."""

RequiredText = Annotated[Text, Field(min_length=1), _VISIBLE]
"""Free text that must say something: not empty once trimmed, at most 4000 characters."""

Identifier = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/\-]*$"
    ),
]
"""An opaque id such as ``LN-2020-0001`` or a UUID: letters, digits and ``. _ : / -``, up to 128 chars."""

ReasonCode = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
]
"""A machine-readable snake_case reason code such as ``insufficient_stock``."""

Collectibility = Annotated[int, Field(ge=1, le=5, strict=True), Whole]
"""OJK collectibility grade: 1 lancar, 2 DPK, 3 kurang lancar, 4 diragukan, 5 macet."""

_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


def _parse_email(value: Any) -> str:
    if not isinstance(value, str):
        raise _fail("email_type", "email must be a string, got {kind}", kind=type(value).__name__)
    text = value.strip()
    if len(text) > 254 or not _EMAIL.match(text):  # noqa: PLR2004
        raise _fail("email_format", "email must look like name@example.co.id, got {value!r}", value=value)
    local, _, domain = validate_text(text).rpartition("@")
    return f"{local}@{domain.lower()}"


Email = Annotated[
    str,
    BeforeValidator(_parse_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": 254}),
]
"""An e-mail address (light syntax check; the domain is lower-cased)."""

_URL: Final = re.compile(r"^https?://[^\s/?#]+[^\s]*$")


def _parse_url(value: Any) -> str:
    if not isinstance(value, str):
        raise _fail("url_type", "URL must be a string, got {kind}", kind=type(value).__name__)
    text = value.strip()
    if len(text) > 2048 or not _URL.match(text):  # noqa: PLR2004
        raise _fail(
            "url_format",
            "URL must be an absolute http(s) URL such as https://example.co.id/hook, got {value!r}",
            value=value,
        )
    return validate_text(text)


HttpsUrl = Annotated[
    str,
    BeforeValidator(_parse_url),
    # The validator's own rule (not format "uri": it takes international host names, as browsers do).
    WithJsonSchema({"type": "string", "pattern": r"^https?://[^\s/?#\x00]+[^\s\x00]*$", "maxLength": 2048}),
]
"""An absolute ``http://`` or ``https://`` URL."""

# --------------------------------------------------------------------------------------------------
# time

_ISO_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _parse_business_date(value: Any) -> date:
    if isinstance(value, datetime):
        raise _fail("date_type", "a business date must be a date (YYYY-MM-DD), not a timestamp")
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE.match(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError as exc:
            raise _fail("date_invalid", "{value!r} is not a real calendar date", value=value) from exc
    raise _fail("date_format", "a business date must be an ISO date YYYY-MM-DD, got {value!r}", value=value)


def _parse_utc_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        text = value.strip()
        if len(text) < 11 or "T" not in text.upper():  # noqa: PLR2004
            raise _fail(
                "datetime_format",
                "a timestamp must be RFC 3339 with a time zone, such as 2020-04-01T03:00:00Z, got {value!r}",
                value=value,
            )
        try:
            moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1] in "zZ" else text)
        except ValueError as exc:
            raise _fail(
                "datetime_format",
                "a timestamp must be RFC 3339 with a time zone, such as 2020-04-01T03:00:00Z, got {value!r}",
                value=value,
            ) from exc
    else:
        raise _fail(
            "datetime_type",
            "a timestamp must be an RFC 3339 string such as 2020-04-01T03:00:00Z, got {kind}",
            kind=type(value).__name__,
        )
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise _fail(
            "datetime_naive",
            "a timestamp must carry a time zone (e.g. a trailing Z for UTC); naive times are refused",
        )
    return moment.astimezone(UTC)


BusinessDate = Annotated[
    date,
    BeforeValidator(_parse_business_date),
    WithJsonSchema(
        {"type": "string", "format": "date", "description": "ISO date (Asia/Jakarta business day)."}
    ),
]
"""A business date (ISO ``YYYY-MM-DD``, meant in Asia/Jakarta)."""

UtcDateTime = Annotated[
    datetime,
    BeforeValidator(_parse_utc_datetime),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "description": "RFC 3339 timestamp, normalised to UTC."}
    ),
]
"""A timezone-aware timestamp, normalised to UTC; naive datetimes are refused."""


# --------------------------------------------------------------------------------------------------
# small value models


def _code_of(pattern: str) -> dict[str, Any]:
    return {"properties": {"code": {"anyOf": [{"type": "string", "pattern": pattern}, {"type": "null"}]}}}


# ``Region._code_matches_level`` in the schema: with a district the code is a district's, else a city's.
_REGION_CODE_LEVEL: Final[dict[str, Any]] = {
    "if": {"required": ["district"], "properties": {"district": {"type": "string"}}},
    "then": _code_of(r"^\d{2}\.\d{2}\.\d{2}$"),
    "else": _code_of(r"^\d{2}\.\d{2}$"),
}


class Region(BaseModel):
    """Where a party is: province, city (kabupaten/kota) and, optionally, district (kecamatan).

    `code` is the official (Kemendagri) code of the most specific level given: `32.75` for a city,
    `32.75.10` for a district. Both `district` and `code` are optional, so events written before they
    existed stay valid; access is scoped by province and city, and a district lies inside its city's scope.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_extra=_REGION_CODE_LEVEL)

    province: Name
    city: Name
    district: Annotated[
        Name | None, Field(description="Kecamatan, e.g. Jatisampurna", examples=["Jatisampurna"])
    ] = None
    code: Annotated[
        str | None,
        Field(
            description="Kemendagri code of the most specific level: 32.75 (city), 32.75.10 (district)",
            pattern=r"^\d{2}\.\d{2}(\.\d{2})?$",
            examples=["32.75.10"],
        ),
    ] = None

    @model_validator(mode="after")
    def _code_matches_level(self) -> Self:
        if self.code is None:
            return self
        depth = self.code.count(".") + 1
        expected = 3 if self.district is not None else 2
        if depth != expected:
            level = "a district (NN.NN.NN)" if self.district is not None else "a city (NN.NN)"
            msg = f"code {self.code!r} must be the code of {level}, the most specific level given"
            raise ValueError(msg)
        return self
