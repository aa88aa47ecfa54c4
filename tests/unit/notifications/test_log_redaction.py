"""No secret, token, password, e-mail address or phone number in a log line, and no traceback with locals:
the one logging setup (``kumkm_shared.service.logging``) with both renderers, and the notifications
delivery worker's log calls."""

from __future__ import annotations

import io
import json
import logging
import uuid
from typing import TYPE_CHECKING, Any, Literal

import pytest
import structlog

from kumkm_notifications import repository as repo
from kumkm_notifications.dispatcher import Dispatcher
from kumkm_notifications.domain.delivery import Outcome, Status
from kumkm_shared.contracts import Category, Channel
from kumkm_shared.service.logging import configure_logging, redact

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

FAKE_SECRET = "whsec-fake-7Qk2pL9xZr4mN8vB"
EMAIL = "budi.santoso@kranggan.coop.id"
PHONE = "+6281234561234"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvcGVyYXRvciJ9.c2lnbmF0dXJl"


@pytest.fixture
def configured() -> Iterator[Callable[[Literal["json", "console"]], io.StringIO]]:
    """``configured("console")``: logging set up as a process sets it up, into a buffer; undone after."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def configure(fmt: Literal["json", "console"]) -> io.StringIO:
        out = io.StringIO()
        configure_logging(fmt, "INFO", stream=out)
        return out

    yield configure
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


def _fails_with_a_secret_in_a_local() -> None:
    webhook_secret = FAKE_SECRET  # a local a rich traceback with show_locals would print
    raise RuntimeError(f"signing failed for party {len(webhook_secret)}")


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_traceback_never_shows_locals(
    configured: Callable[[Literal["json", "console"]], io.StringIO], fmt: Literal["json", "console"]
) -> None:
    out = configured(fmt)
    try:
        _fails_with_a_secret_in_a_local()
    except RuntimeError:
        structlog.get_logger("test").exception("delivery task failed")
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    text = out.getvalue()
    assert "_fails_with_a_secret_in_a_local" in text, "the traceback itself is there"
    assert text.count("RuntimeError: signing failed") == 2, text
    assert FAKE_SECRET not in text
    assert "webhook_secret =" not in text


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_credentials_and_addresses_are_masked_in_every_line(
    configured: Callable[[Literal["json", "console"]], io.StringIO], fmt: Literal["json", "console"]
) -> None:
    out = configured(fmt)
    log = structlog.get_logger("test")
    log.info("signed in", password="hunter2-kumkm", token=JWT, client_secret=FAKE_SECRET)
    log.info(
        "sending",
        to=EMAIL,
        phone=PHONE,
        webhook_secret=FAKE_SECRET,
        headers={"Authorization": f"Bearer {JWT}", "Accept": "application/json"},
    )
    log.warning("refused: 550 <%s>; sms to %s; Bearer %s", EMAIL, PHONE, JWT)
    logging.getLogger("faststream").warning("connect nats://kumkm:%s@localhost:4222 failed", FAKE_SECRET)
    text = out.getvalue()
    for secret in ("hunter2-kumkm", JWT, FAKE_SECRET, EMAIL, PHONE):
        assert secret not in text, f"{secret} in {text}"
    assert "b***@kranggan.coop.id" in text
    assert "+62***1234" in text
    assert "application/json" in text, "what is not sensitive stays"
    if fmt == "json":
        first = json.loads(text.splitlines()[0])
        assert first["password"] == "***"
        assert first["event"] == "signed in"


def test_redact_masks_by_key_nested_and_leaves_the_rest() -> None:
    event: dict[str, Any] = {
        "event": "x",
        "password": "hunter2",
        "smtp_password": None,
        "gateway_token": "t0k3n",
        "X-KUMKM-Signature": "sha256=abc",
        "email": EMAIL,
        "to": [PHONE, EMAIL],
        "nested": {"secret": "s", "list": [{"authorization": "Basic dXNlcjpwYXNz"}]},
        "delivery": "5d3a3f4e-6b1c-4c1e-9a53-4b554d4b4d01",
        "count": 3,
        "timestamp": "2026-01-01T00:00:00Z",
    }
    cleaned = redact(None, "info", event)
    assert cleaned["password"] == "***"
    assert cleaned["smtp_password"] is None
    assert cleaned["gateway_token"] == "***"
    assert cleaned["email"] == "b***@kranggan.coop.id"
    assert cleaned["to"] == ["+62***1234", "b***@kranggan.coop.id"]
    assert cleaned["nested"] == {"secret": "***", "list": [{"authorization": "***"}]}
    assert cleaned["delivery"] == "5d3a3f4e-6b1c-4c1e-9a53-4b554d4b4d01"
    assert cleaned["count"] == 3
    assert cleaned["X-KUMKM-Signature"] == "sha256=abc", "a signature is not the secret"


def _claimed(channel: Channel, address: str) -> repo.Claimed:
    return repo.Claimed(
        id=uuid.uuid4(),
        event_id=uuid.uuid4(),
        event_type="kumkm.loans.installment.overdue.v1",
        correlation_id=None,
        party_id="3275010203040001",
        channel=channel,
        category=Category.REPAYMENT,
        address=address,
        subject="s",
        body_text="t",
        body_html="h",
        payload=b"{}",
        attempt=8,
        name="Koperasi Pedagang Pasar Kranggan",
        secret=FAKE_SECRET,
    )


def test_the_delivery_workers_log_lines_hold_no_address_or_secret() -> None:
    email = _claimed(Channel.EMAIL, EMAIL)
    sms = _claimed(Channel.SMS, PHONE)
    assert FAKE_SECRET not in repr(email), "a claimed delivery's repr shows no secret"
    assert EMAIL not in repr(email)
    refused = Outcome.permanent("smtp_550", f"550 5.1.1 <{EMAIL}>: Recipient address rejected")
    dropped = Outcome.transient("http_503", f"HTTP 503: gateway busy for {PHONE}")
    with structlog.testing.capture_logs() as events:
        Dispatcher._log_outcomes(
            [
                (email, refused, Status.FAILED, None, "smtp_550"),
                (sms, dropped, Status.PENDING, 1.5, None),
            ],
            {email.id, sms.id},
        )
    assert len(events) == 2
    text = repr(events)
    for secret in (EMAIL, PHONE, FAKE_SECRET):
        assert secret not in text, text
    assert "b***@kranggan.coop.id" in text


def test_values_that_are_not_text_or_too_deep_are_scrubbed_or_masked() -> None:
    from kumkm_shared.service.logging import redact

    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvZmZpY2VyIn0.c2lnbmF0dXJl"
    deep: dict[str, object] = {"a": {"b": {"c": {"d": {"e": {"f": "budi@example.co.id"}}}}}}
    event = redact(
        None, "info", {"event": "x", "headers": (b"authorization", f"Bearer {token}".encode()), **deep}
    )
    rendered = repr(event)
    assert token not in rendered
    assert "budi@example.co.id" not in rendered
    assert event["event"] == "x"
