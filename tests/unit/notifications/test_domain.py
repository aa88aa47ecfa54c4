from __future__ import annotations

import pytest

from kumkm_notifications.domain.contacts import Contact, route
from kumkm_notifications.domain.delivery import (
    Outcome,
    RetryPolicy,
    Status,
    Verdict,
    after_lost_outcome,
    http_reply,
    smtp_reply,
)
from kumkm_notifications.domain.subscriptions import (
    CONSUMED,
    SUBSCRIPTIONS,
    BorrowerOfLoan,
    Party,
    about,
    recipients_of,
)
from kumkm_shared import Backoff
from kumkm_shared.contracts import Category, Channel, Locale, spec_for
from tests.support.notifications import BUYER_ID, KRANGGAN_ID, LOAN_ID, SELLER_NIB, recorded, sample
from tests.support.samples import SAMPLES as CONTRACT_SAMPLES

pytestmark = pytest.mark.unit


def contract_sample(event_type: str) -> object:
    return spec_for(event_type).model.model_validate(CONTRACT_SAMPLES[event_type])


EXPECTED = {
    "kumkm.loans.restructuring.requested.v1": (Category.RESTRUCTURING, [BorrowerOfLoan(LOAN_ID)]),
    "kumkm.loans.restructuring.approved.v1": (Category.RESTRUCTURING, [Party(KRANGGAN_ID, "borrower")]),
    "kumkm.loans.restructuring.rejected.v1": (Category.RESTRUCTURING, [Party(KRANGGAN_ID, "borrower")]),
    "kumkm.loans.restructuring.referred.v1": (Category.RESTRUCTURING, [Party("officers", "officers")]),
    "kumkm.loans.installment.overdue.v1": (Category.REPAYMENT, [Party(KRANGGAN_ID, "borrower")]),
    "kumkm.loans.loan.collectibility_changed.v1": (Category.REPAYMENT, [Party(KRANGGAN_ID, "borrower")]),
    "kumkm.catalog.product.curated.v1": (Category.CURATION, [Party(SELLER_NIB, "seller")]),
    "kumkm.catalog.order.accepted.v1": (Category.ORDERS, [Party(SELLER_NIB, "seller")]),
    "kumkm.catalog.order.rejected.v1": (Category.ORDERS, [Party(BUYER_ID, "buyer")]),
    "kumkm.catalog.order.cancelled.v1": (
        Category.ORDERS,
        [Party(BUYER_ID, "buyer"), Party(SELLER_NIB, "seller")],
    ),
    "kumkm.catalog.order.confirmed.v1": (Category.ORDERS, [Party(BUYER_ID, "buyer")]),
    "kumkm.catalog.order.shipped.v1": (Category.ORDERS, [Party(BUYER_ID, "buyer")]),
    "kumkm.catalog.order.delivered.v1": (Category.ORDERS, [Party(SELLER_NIB, "seller")]),
    "kumkm.catalog.order.paid.v1": (Category.ORDERS, [Party(SELLER_NIB, "seller")]),
    "kumkm.catalog.order.step_refused.v1": (Category.ORDERS, [Party(BUYER_ID, "buyer")]),
}


@pytest.mark.parametrize("event_type", sorted(EXPECTED))
def test_each_event_notifies_the_party_of_the_issue_table(event_type: str) -> None:
    category, recipients = EXPECTED[event_type]
    assert SUBSCRIPTIONS[event_type].category is category
    assert recipients_of(event_type, sample(event_type), "officers") == recipients


STEPS = {
    "kumkm.catalog.order.confirmed.v1",
    "kumkm.catalog.order.shipped.v1",
    "kumkm.catalog.order.delivered.v1",
    "kumkm.catalog.order.paid.v1",
}
STATUS_CHANGED = "kumkm.catalog.order.status_changed.v1"


@pytest.mark.parametrize("event_type", sorted(set(EXPECTED) - STEPS))
def test_an_outcome_event_is_about_itself(event_type: str) -> None:
    event = sample(event_type)
    assert about(event_type, event) == (event_type, event)


@pytest.mark.parametrize("step_type", sorted(STEPS))
def test_a_step_is_notified_from_the_catalogs_record_only(step_type: str) -> None:
    change = recorded(step_type)
    assert about(STATUS_CHANGED, change) == (step_type, change.applied)
    assert step_type not in CONSUMED, "the integrator's claim is not consumed; the catalog may refuse it"


def test_an_event_consumed_only_to_learn_notifies_nobody() -> None:
    disbursed = contract_sample("kumkm.loans.loan.disbursed.v1")
    assert about("kumkm.loans.loan.disbursed.v1", disbursed) is None


def test_the_service_consumes_what_carries_its_subscriptions() -> None:
    assert {t for t in EXPECTED if t not in STEPS} | {STATUS_CHANGED} == CONSUMED


@pytest.mark.parametrize(
    ("step", "recipients"),
    [
        ("confirmed", [Party(SELLER_NIB, "seller")]),
        ("shipped", [Party(SELLER_NIB, "seller")]),
        ("delivered", [Party(BUYER_ID, "buyer")]),
        ("paid", [Party(BUYER_ID, "buyer")]),
    ],
)
def test_a_refused_step_reaches_the_party_whose_system_sends_it(step: str, recipients: list[Party]) -> None:
    event = sample("kumkm.catalog.order.step_refused.v1", step=step)
    assert recipients_of(event.event_type, event, "officers") == recipients


def test_a_refused_confirmation_of_an_order_without_a_seller_reaches_nobody() -> None:
    event = sample("kumkm.catalog.order.step_refused.v1", step="confirmed", seller=None)
    assert recipients_of(event.event_type, event, "officers") == []


def test_a_cancelled_order_without_a_seller_reaches_the_buyer_only() -> None:
    event = sample("kumkm.catalog.order.cancelled.v1", seller=None)
    assert recipients_of(event.event_type, event, "officers") == [Party(BUYER_ID, "buyer")]


def test_the_officers_group_is_configurable() -> None:
    event = sample("kumkm.loans.restructuring.referred.v1")
    assert recipients_of(event.event_type, event, "OFFICERS-BEKASI") == [Party("OFFICERS-BEKASI", "officers")]


def _contact(**kw: object) -> Contact:
    fields: dict[str, object] = {
        "party_id": KRANGGAN_ID,
        "name": "Kranggan",
        "locale": Locale.ID_ID,
        "channels": (Channel.EMAIL, Channel.INBOX),
        "email": "a@b.id",
    }
    fields.update(kw)
    return Contact(**fields)  # type: ignore[arg-type]


def test_routing_no_contact_opt_out_and_channels() -> None:
    assert route(None, Category.ORDERS).skipped == "no_contact"
    opted_out = route(_contact(opt_outs=frozenset({Category.ORDERS})), Category.ORDERS)
    assert opted_out.skipped == "suppressed"
    assert "orders" in opted_out.detail
    assert route(_contact(opt_outs=frozenset({Category.ORDERS})), Category.RESTRUCTURING).channels == (
        Channel.EMAIL,
        Channel.INBOX,
    )
    assert _contact().address(Channel.INBOX) == KRANGGAN_ID
    with pytest.raises(ValueError, match="without an address"):
        _contact().address(Channel.WEBHOOK)


@pytest.mark.parametrize(
    ("code", "verdict"),
    [
        (421, Verdict.TRANSIENT),
        (451, Verdict.TRANSIENT),
        (452, Verdict.TRANSIENT),
        (550, Verdict.PERMANENT),
        (554, Verdict.PERMANENT),
    ],
)
def test_smtp_4xx_is_transient_and_5xx_permanent(code: int, verdict: Verdict) -> None:
    outcome = smtp_reply(code, "nope")
    assert outcome.verdict is verdict
    assert outcome.code == f"smtp_{code}"
    assert outcome.response == f"{code} nope"


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.DELIVERED),
        (204, Verdict.DELIVERED),
        (429, Verdict.TRANSIENT),
        (500, Verdict.TRANSIENT),
        (503, Verdict.TRANSIENT),
        (400, Verdict.PERMANENT),
        (401, Verdict.PERMANENT),
        (404, Verdict.PERMANENT),
        (410, Verdict.PERMANENT),
        (301, Verdict.PERMANENT),
    ],
)
def test_http_429_and_5xx_are_transient_other_4xx_permanent(status: int, verdict: Verdict) -> None:
    assert http_reply(status, "body").verdict is verdict


POLICY = RetryPolicy(max_attempts=3, backoff=Backoff(base=1.0, factor=2.0, cap=10.0, jitter=0.0))


def test_transient_failures_back_off_exponentially_until_the_limit() -> None:
    glitch = Outcome.transient("smtp_451", "451 try later")
    assert POLICY.next_step(glitch, 1) == (Status.PENDING, 1.0, None)
    assert POLICY.next_step(glitch, 2) == (Status.PENDING, 2.0, None)
    assert POLICY.next_step(glitch, 3) == (Status.FAILED, None, "retries_exhausted")


def test_permanent_failure_is_final_at_once_and_delivery_is_final() -> None:
    assert POLICY.next_step(Outcome.permanent("http_400", "bad"), 1) == (Status.FAILED, None, "http_400")
    assert POLICY.next_step(Outcome.delivered("250 ok"), 2) == (Status.DELIVERED, None, None)


def test_retry_after_is_honoured_within_the_cap() -> None:
    assert POLICY.next_step(Outcome.transient("http_429", "slow down", retry_after=5.0), 1)[1] == 5.0
    assert POLICY.next_step(Outcome.transient("http_429", "slow down", retry_after=500.0), 1)[1] == 10.0


def test_jitter_spreads_the_waits() -> None:
    policy = RetryPolicy(max_attempts=9, backoff=Backoff(base=1.0, factor=2.0, cap=100.0, jitter=0.2))
    waits = {policy.next_step(Outcome.transient("timeout", "t"), 3)[1] for _ in range(50)}
    assert len(waits) > 1
    assert all(w is not None and 3.2 <= w <= 4.8 for w in waits)


def test_a_lost_send_is_repeated_only_where_the_receiver_deduplicates() -> None:
    assert after_lost_outcome(Channel.WEBHOOK, gateway_idempotent=False) is Status.PENDING
    assert after_lost_outcome(Channel.EMAIL, gateway_idempotent=True) is Status.UNKNOWN
    assert after_lost_outcome(Channel.SMS, gateway_idempotent=False) is Status.UNKNOWN
    assert after_lost_outcome(Channel.WHATSAPP, gateway_idempotent=True) is Status.PENDING
