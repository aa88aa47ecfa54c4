"""Masking personal data (e-mail addresses, phone numbers) for every reader but the contact routes. Pure.

Only the contact routes (``contacts.read``, operators, each read audited) show a party's addresses; the
activity feed, the inbox, the receipts and the log show them masked: ``b***@example.co.id``,
``+62***1234``. Free text that may quote an address (a provider's response, an error, a message's body) is
scrubbed with ``scrub``. Rules: ``docs/rules/notifications.md``, section "Personal data and secrets".
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

from kumkm_shared.contracts import Channel

MASK: Final = "***"
PHONE_TAIL: Final = 4  # digits of a phone number left visible

# An address inside free text: a provider's reply quotes the recipient ("550 <bob@example.co.id>: ...").
_EMAIL_IN_TEXT: Final = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
# An Indonesian mobile number as E.164 (+62 8...) or national (08...), with optional spaces, dots or
# hyphens between digits; never the middle of a longer token (a UUID's digit group, an id).
_PHONE_IN_TEXT: Final = re.compile(r"(?<![\w+-])(?:\+62|0)[ .-]?8(?:[ .-]?\d){7,12}(?![\w-])")


def mask_email(address: str) -> str:
    """``budi@example.co.id`` -> ``b***@example.co.id``: the first character and the domain."""
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return MASK
    return f"{local[0]}{MASK}@{domain}"


def mask_phone(number: str) -> str:
    """``+6281234561234`` -> ``+62***1234``: the country code (or the national ``08``) and the last four."""
    digits = re.sub(r"\D", "", number)
    if len(digits) <= PHONE_TAIL + 2:  # too short to show any of it
        return MASK
    head = "+" + digits[:2] if number.lstrip().startswith("+") else digits[:2]
    return f"{head}{MASK}{digits[-PHONE_TAIL:]}"


def mask_url(url: str) -> str:
    """A webhook URL as its scheme and host only: its path and query may carry the receiver's token."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if not parts.scheme or not parts.hostname:
        return MASK
    port = f":{parts.port}" if parts.port else ""
    rest = f"/{MASK}" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{parts.hostname}{port}{rest}"


def mask_address(channel: Channel | str | None, address: str | None) -> str | None:
    """A delivery's address as every reader but an operator of contacts sees it. The inbox's address is
    the party id, shown as it is."""
    if address is None or channel is None:
        return address
    match Channel(channel):
        case Channel.EMAIL:
            return mask_email(address)
        case Channel.SMS | Channel.WHATSAPP:
            return mask_phone(address)
        case Channel.WEBHOOK:
            return mask_url(address)
        case Channel.INBOX:
            return address


def scrub(text: str | None) -> str | None:
    """Free text with every e-mail address and phone number in it masked."""
    if not text:
        return text
    text = _EMAIL_IN_TEXT.sub(lambda m: mask_email(m.group()), text)
    return _PHONE_IN_TEXT.sub(lambda m: mask_phone(m.group()), text)
