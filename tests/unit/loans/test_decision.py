"""When an officer's decision can be taken: refusals with their codes, answered 409 by the one mapping."""

from __future__ import annotations

from datetime import date

import pytest

from kumkm_loans.domain import DecisionRefused, PolicyReason, check_decision, check_still_eligible
from kumkm_shared.errors import Refusal

pytestmark = pytest.mark.unit

REQUESTED = date(2020, 4, 20)


def test_a_referred_request_can_be_decided_on_or_after_its_date() -> None:
    check_decision("RR-1", "referred", requested_on=REQUESTED, decided_on=REQUESTED)
    check_still_eligible([])


@pytest.mark.parametrize(
    ("status", "decided_on", "code"),
    [
        ("approved", REQUESTED, "not_referred"),
        ("rejected", REQUESTED, "not_referred"),
        ("referred", date(2020, 4, 19), "decided_before_request"),
    ],
)
def test_a_decision_that_cannot_be_taken_is_refused(status: str, decided_on: date, code: str) -> None:
    with pytest.raises(DecisionRefused) as refused:
        check_decision("RR-1", status, requested_on=REQUESTED, decided_on=decided_on)
    assert refused.value.code == code
    assert isinstance(refused.value, Refusal)
    assert refused.value.http_status == 409


def test_an_approval_is_refused_when_the_policy_now_rejects() -> None:
    reason = PolicyReason("open_request_exists", "Masih ada permohonan lain.", "Another request is open.")
    with pytest.raises(DecisionRefused) as refused:
        check_still_eligible([reason])
    assert refused.value.code == "no_longer_eligible"
    assert "Another request is open." in refused.value.reason
