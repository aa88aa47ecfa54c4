"""``kumkm_notifications.domain.privacy``: addresses masked for every reader but the contact routes."""

from __future__ import annotations

import pytest

from kumkm_notifications.domain.privacy import mask_address, mask_email, mask_phone, mask_url, scrub
from kumkm_shared.contracts import Channel


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("budi@example.co.id", "b***@example.co.id"),
        ("pengurus.koperasi+notif@kranggan.coop.id", "p***@kranggan.coop.id"),
        ("a@b.id", "a***@b.id"),
        ("not-an-address", "***"),
        ("@example.co.id", "***"),
    ],
)
def test_an_email_keeps_its_first_character_and_its_domain(address: str, masked: str) -> None:
    assert mask_email(address) == masked


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+6281234561234", "+62***1234"),
        ("081234561234", "08***1234"),
        ("+62 812-3456-1234", "+62***1234"),
        ("12345", "***"),
    ],
)
def test_a_phone_keeps_its_country_code_and_last_four_digits(number: str, masked: str) -> None:
    assert mask_phone(number) == masked


def test_a_webhook_url_shows_its_scheme_and_host_only() -> None:
    assert mask_url("https://kranggan.coop.id/hooks/kumkm?token=abc") == "https://kranggan.coop.id/***"
    assert mask_url("http://127.0.0.1:8080/hook") == "http://127.0.0.1:8080/***"
    assert mask_url("https://kranggan.coop.id") == "https://kranggan.coop.id"
    assert mask_url("kranggan.coop.id/hook") == "***"


def test_a_delivery_address_is_masked_by_its_channel() -> None:
    assert mask_address(Channel.EMAIL, "budi@example.co.id") == "b***@example.co.id"
    assert mask_address("sms", "+6281234561234") == "+62***1234"
    assert mask_address(Channel.WHATSAPP, "+6281234561234") == "+62***1234"
    assert mask_address(Channel.WEBHOOK, "https://x.co.id/h") == "https://x.co.id/***"
    assert mask_address(Channel.INBOX, "3275010203040001") == "3275010203040001"
    assert mask_address(None, None) is None, "a row without a channel has no address"


def test_scrub_masks_every_address_quoted_in_free_text() -> None:
    text = (
        "550 5.1.1 <budi.santoso@kranggan.coop.id>: Recipient address rejected; "
        "hubungi +62 812-3456-1234 atau 081234561234."
    )
    assert scrub(text) == (
        "550 5.1.1 <b***@kranggan.coop.id>: Recipient address rejected; hubungi +62***1234 atau 08***1234."
    )
    assert scrub(None) is None
    assert scrub("") == ""


@pytest.mark.parametrize(
    "text",
    [
        "delivery 12345678-0812-3456-7890-123456789012 retried",  # a UUID's digit groups
        "NIB 9120001234567, koperasi 3275010203040001, loan LN-2019-0001",
        "order ORD-08123456789 shipped",
        "HTTP 503: Service Unavailable",
    ],
)
def test_scrub_leaves_ids_and_numbers_that_are_not_phones(text: str) -> None:
    assert scrub(text) == text
