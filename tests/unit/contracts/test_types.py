from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from kumkm_shared.contracts import (
    AnnualRate,
    BusinessDate,
    CooperativeNumber,
    Email,
    HttpsUrl,
    Money,
    Name,
    Nib,
    Npwp,
    Percent,
    PhoneE164,
    PositiveMoney,
    ProductStockUpdated,
    Region,
    Text,
    UtcDateTime,
)

pytestmark = pytest.mark.unit


class Holder(BaseModel):
    money: Money | None = None
    positive: PositiveMoney | None = None
    rate: AnnualRate | None = None
    pct: Percent | None = None
    nib: Nib | None = None
    coop: CooperativeNumber | None = None
    npwp: Npwp | None = None
    phone: PhoneE164 | None = None
    region: Region | None = None
    day: BusinessDate | None = None
    at: UtcDateTime | None = None


def error_of(field: str, value: Any) -> str:
    with pytest.raises(ValidationError) as info:
        Holder.model_validate({field: value})
    errors = info.value.errors()
    assert len(errors) == 1, errors
    assert errors[0]["loc"][0] == field
    return errors[0]["msg"]


# ---------------------------------------------------------------------------------------------- money


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("125000", Decimal("125000.00")),
        ("125000.5", Decimal("125000.50")),
        ("125000.00", Decimal("125000.00")),
        ("125000.000", Decimal("125000.00")),
        (125000, Decimal("125000.00")),
        (Decimal("1.1"), Decimal("1.10")),
        ("0", Decimal("0.00")),
        (" 42 ", Decimal("42.00")),
    ],
)
def test_money_accepts_strings_ints_and_decimals(raw: Any, expected: Decimal) -> None:
    value = Holder(money=raw).money
    assert value == expected
    assert isinstance(value, Decimal)
    assert value.as_tuple().exponent == -2


def test_money_serialises_as_string_with_two_decimals() -> None:
    holder = Holder(money="125000")
    assert holder.model_dump(mode="json")["money"] == "125000.00"
    assert '"money":"125000.00"' in holder.model_dump_json()
    assert holder.model_dump()["money"] == Decimal("125000.00")  # Python mode keeps the Decimal


def test_money_negative_zero_is_plain_zero() -> None:
    assert Holder(money="-0").model_dump(mode="json")["money"] == "0.00"


@pytest.mark.parametrize("raw", [125000.0, 1.5, 0.1])
def test_money_rejects_floats(raw: float) -> None:
    message = error_of("money", raw)
    assert "must not be a float" in message
    assert "decimal string" in message


def test_money_rejects_floats_from_json() -> None:
    with pytest.raises(ValidationError, match="must not be a float"):
        Holder.model_validate_json('{"money": 12.5}')


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("1.005", "at most 2 decimal places"),
        ("-1", "must not be negative"),
        ("abc", "plain decimal string"),
        ("1e3", "plain decimal string"),
        ("NaN", "plain decimal string"),
        (True, "got a boolean"),
        ([1], "got list"),
        ("1" + "0" * 18, "below 10^18"),
    ],
)
def test_money_rejections_name_the_rule(raw: Any, fragment: str) -> None:
    assert fragment in error_of("money", raw)


def test_positive_money() -> None:
    assert Holder(positive="0.01").positive == Decimal("0.01")
    assert "greater than 0" in error_of("positive", "0")
    assert "must not be a float" in error_of("positive", 5.0)


# ---------------------------------------------------------------------------------------------- rates


def test_annual_rate() -> None:
    holder = Holder(rate="0.06")
    assert holder.rate == Decimal("0.06")
    assert holder.model_dump(mode="json")["rate"] == "0.06"
    assert Holder(rate="0.060").model_dump(mode="json")["rate"] == "0.06"
    assert Holder(rate=0).model_dump(mode="json")["rate"] == "0"
    assert Holder(rate=1).rate == Decimal(1)
    assert "between 0 and 1" in error_of("rate", "6")
    assert "between 0 and 1" in error_of("rate", "-0.01")
    assert "must not be a float" in error_of("rate", 0.06)
    assert "at most 8 decimal places" in error_of("rate", "0.123456789")


def test_percent() -> None:
    assert Holder(pct="25.5").model_dump(mode="json")["pct"] == "25.5"
    assert Holder(pct=100).pct == Decimal(100)
    assert "between 0 and 100" in error_of("pct", "100.01")
    assert "must not be a float" in error_of("pct", 40.0)


# ---------------------------------------------------------------------------------------------- identifiers


def test_nib() -> None:
    assert Holder(nib="9120001234567").nib == "9120001234567"
    assert Holder(nib=" 0120001234567 ").nib == "0120001234567"
    assert error_of("nib", "912000123456") == "NIB must be exactly 13 digits, got 12"
    assert "digits only" in error_of("nib", "91200012345AB")
    assert "string of digits" in error_of("nib", 9120001234567)


def test_cooperative_number() -> None:
    assert Holder(coop="3275010101010001").coop == "3275010101010001"
    assert error_of("coop", "327501010101000") == (
        "Cooperative number (NIK koperasi) must be exactly 16 digits, got 15"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("01.234.567.8-901.000", "012345678901000"),
        ("012345678901000", "012345678901000"),
        ("0123 4567 8901 0000", "0123456789010000"),
    ],
)
def test_npwp_normalises_punctuation(raw: str, expected: str) -> None:
    assert Holder(npwp=raw).npwp == expected


def test_npwp_rejections() -> None:
    assert error_of("npwp", "01.234.567.8-901") == "NPWP must be exactly 15 or 16 digits, got 12"
    assert "digits only" in error_of("npwp", "01.234.567.8/901.000")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+6281234567890", "+6281234567890"),
        ("081234567890", "+6281234567890"),
        ("0812-3456-7890", "+6281234567890"),
        ("+62 21 555 1234", "+62215551234"),
    ],
)
def test_phone_normalises(raw: str, expected: str) -> None:
    assert Holder(phone=raw).phone == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("+6181234567", "starting with +62"),
        ("6281234567890", "starting with +62"),
        ("+62812345", "8 to 13 digits after +62, got 6"),
        ("+6281234567890123", "8 to 13 digits after +62, got 14"),
        ("+62081234567", "must not have a 0 after +62"),
        ("+62812abc4567", "only digits"),
    ],
)
def test_phone_rejections(raw: str, fragment: str) -> None:
    assert fragment in error_of("phone", raw)


def test_region_requires_non_empty_names() -> None:
    assert Holder(region={"province": " Jawa Barat ", "city": "Kota Bekasi"}).region == Region(
        province="Jawa Barat", city="Kota Bekasi"
    )
    with pytest.raises(ValidationError) as info:
        Holder.model_validate({"region": {"province": "", "city": "Kota Bekasi"}})
    assert info.value.errors()[0]["loc"] == ("region", "province")


# ---------------------------------------------------------------------------------------------- time


def test_business_date() -> None:
    assert Holder(day="2020-04-01").day == date(2020, 4, 1)
    assert Holder(day=date(2020, 4, 1)).model_dump(mode="json")["day"] == "2020-04-01"
    assert "YYYY-MM-DD" in error_of("day", "01/04/2020")
    assert "not a real calendar date" in error_of("day", "2020-02-30")
    assert "not a timestamp" in error_of("day", datetime(2020, 4, 1, tzinfo=UTC))
    assert "YYYY-MM-DD" in error_of("day", 1585699200)


def test_utc_datetime_normalises_to_utc() -> None:
    holder = Holder(at="2020-04-01T10:00:00+07:00")
    assert holder.at == datetime(2020, 4, 1, 3, tzinfo=UTC)
    assert holder.at is not None
    assert holder.at.utcoffset() == timedelta(0)
    assert holder.model_dump(mode="json")["at"] == "2020-04-01T03:00:00Z"
    jakarta = timezone(timedelta(hours=7))
    assert Holder(at=datetime(2020, 4, 1, 10, tzinfo=jakarta)).at == datetime(2020, 4, 1, 3, tzinfo=UTC)
    assert Holder(at="2020-04-01T03:00:00z").at == datetime(2020, 4, 1, 3, tzinfo=UTC)


@pytest.mark.parametrize("raw", ["2020-04-01T03:00:00", datetime(2020, 4, 1, 3)])  # noqa: DTZ001
def test_utc_datetime_rejects_naive(raw: Any) -> None:
    assert "naive" in error_of("at", raw)


def test_utc_datetime_rejects_garbage() -> None:
    assert "RFC 3339" in error_of("at", "yesterday")
    assert "RFC 3339" in error_of("at", "2020-04-01")
    assert "RFC 3339" in error_of("at", 1585699200)


# ---------------------------------------------------------------------------------------------- text


class Texts(BaseModel):
    name: Name | None = None
    text: Text | None = None
    email: Email | None = None
    url: HttpsUrl | None = None


@pytest.mark.parametrize("field", ["name", "text", "email", "url"])
def test_text_no_store_can_hold_is_refused(field: str) -> None:
    # Postgres text and jsonb refuse NUL; a lone surrogate has no UTF-8 encoding at all.
    valid = {"name": "Kranggan", "text": "pasar sepi", "email": "a@b.co.id", "url": "https://b.co.id/x"}
    for bad, rule in ((valid[field] + "\x00", "NUL"), (valid[field] + "\udc00", "surrogate")):
        with pytest.raises(ValidationError) as info:
            Texts.model_validate({field: bad})
        [error] = info.value.errors()
        assert error["loc"] == (field,)
        assert rule in error["msg"] or "unicode" in error["msg"], error
    assert getattr(Texts.model_validate({field: valid[field] + "😀"}), field).endswith("😀")


def test_catalog_counts_fit_what_the_catalog_stores() -> None:
    with pytest.raises(ValidationError) as info:
        ProductStockUpdated.model_validate(
            {
                "product_id": "PRD-1",
                "seller": {"nib": "9120001234567"},
                "stock": 2**31,
                "as_of": "2024-09-12T05:00:00Z",
            }
        )
    assert info.value.errors()[0]["loc"] == ("stock",)
