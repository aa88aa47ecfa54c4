"""Maker-checker on officers' approvals: who may take which decision, as the pure rule
``kumkm_loans.domain.decision.decision_step`` says; every combination of threshold, person and role."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from kumkm_loans.domain import AWAITING_SECOND_APPROVAL, DecisionRefused, Step, check_decision, decision_step
from kumkm_loans.domain.permissions import APPROVE_SECOND
from kumkm_shared.auth.roles import LOANS_OFFICER, LOANS_SUPERVISOR
from kumkm_shared.errors import Forbidden

pytestmark = pytest.mark.unit

THRESHOLD = Decimal(1_000_000_000)
ABOVE = Decimal("1000000000.01")
OFFICER = frozenset({LOANS_OFFICER})
SUPERVISOR = frozenset({LOANS_SUPERVISOR})
BOTH = OFFICER | SUPERVISOR


def step(
    status: str,
    *,
    approve: bool = True,
    principal: Decimal = ABOVE,
    decider: str = "officer.bekasi",
    roles: frozenset[str] = OFFICER,
    maker: str | None = None,
) -> Step:
    return decision_step(
        status=status,
        approve=approve,
        outstanding_principal=principal,
        second_approval_above=THRESHOLD,
        decider=decider,
        decider_roles=roles,
        maker=maker,
    )


@pytest.mark.parametrize("roles", [OFFICER, SUPERVISOR])
@pytest.mark.parametrize("principal", [Decimal(1), Decimal(999_999_999), THRESHOLD])
def test_at_or_below_the_threshold_one_approval_approves(principal: Decimal, roles: frozenset[str]) -> None:
    assert step("referred", principal=principal, roles=roles) is Step.APPROVE


@pytest.mark.parametrize("roles", [OFFICER, SUPERVISOR, BOTH])
def test_above_the_threshold_the_first_approval_waits_for_a_checker(roles: frozenset[str]) -> None:
    assert step("referred", principal=ABOVE, roles=roles) is Step.FIRST_APPROVAL
    assert step("referred", principal=Decimal(15_000_000_000), roles=roles) is Step.FIRST_APPROVAL


@pytest.mark.parametrize("principal", [Decimal(1), ABOVE])
@pytest.mark.parametrize("roles", [OFFICER, SUPERVISOR])
def test_a_rejection_of_a_referred_request_takes_one_person(
    principal: Decimal, roles: frozenset[str]
) -> None:
    assert step("referred", approve=False, principal=principal, roles=roles) is Step.REJECT


@pytest.mark.parametrize("approve", [True, False])
def test_another_supervisor_completes_or_rejects_the_second_approval(approve: bool) -> None:
    done = step(
        AWAITING_SECOND_APPROVAL,
        approve=approve,
        decider="supervisor.bekasi",
        roles=SUPERVISOR,
        maker="officer.bekasi",
    )
    assert done is (Step.APPROVE if approve else Step.REJECT)


@pytest.mark.parametrize("approve", [True, False])
def test_a_supervisor_as_maker_then_another_supervisor_as_checker(approve: bool) -> None:
    assert step("referred", decider="supervisor.bekasi", roles=SUPERVISOR) is Step.FIRST_APPROVAL
    done = step(
        AWAITING_SECOND_APPROVAL,
        approve=approve,
        decider="supervisor.national",
        roles=SUPERVISOR,
        maker="supervisor.bekasi",
    )
    assert done is (Step.APPROVE if approve else Step.REJECT)


@pytest.mark.parametrize("roles", [OFFICER, SUPERVISOR, BOTH])
@pytest.mark.parametrize("approve", [True, False])
def test_the_maker_is_never_the_checker_whatever_their_roles(roles: frozenset[str], approve: bool) -> None:
    with pytest.raises(Forbidden) as refused:
        step(AWAITING_SECOND_APPROVAL, approve=approve, decider="it-all", roles=roles, maker="it-all")
    assert refused.value.code == "maker_is_checker"
    assert refused.value.http_status == 403
    assert refused.value.permission == APPROVE_SECOND
    assert "it-all made the first approval" in refused.value.reason
    assert "another person" in refused.value.reason


@pytest.mark.parametrize("approve", [True, False])
def test_an_officer_without_the_supervisor_role_cannot_be_the_checker(approve: bool) -> None:
    with pytest.raises(Forbidden) as refused:
        step(
            AWAITING_SECOND_APPROVAL,
            approve=approve,
            decider="it-officer-2",
            roles=OFFICER,
            maker="officer.bekasi",
        )
    assert refused.value.code == "forbidden"
    assert refused.value.permission == APPROVE_SECOND
    assert APPROVE_SECOND in refused.value.reason
    assert LOANS_SUPERVISOR in refused.value.reason


def test_the_second_approval_does_not_look_at_the_threshold_again() -> None:
    # Once waiting, the checker decides, even if the principal has since fallen below the threshold.
    done = step(
        AWAITING_SECOND_APPROVAL,
        principal=Decimal(1),
        decider="supervisor.national",
        roles=SUPERVISOR,
        maker="officer.bekasi",
    )
    assert done is Step.APPROVE


def test_a_request_waiting_for_its_second_approval_can_be_decided_but_not_before_the_first() -> None:
    requested, first = date(2020, 4, 20), date(2020, 5, 4)
    check_decision(
        "RR-1", AWAITING_SECOND_APPROVAL, requested_on=requested, decided_on=first, first_approved_on=first
    )
    with pytest.raises(DecisionRefused) as refused:
        check_decision(
            "RR-1",
            AWAITING_SECOND_APPROVAL,
            requested_on=requested,
            decided_on=date(2020, 5, 3),
            first_approved_on=first,
        )
    assert refused.value.code == "decided_before_first_approval"
    assert refused.value.http_status == 409
