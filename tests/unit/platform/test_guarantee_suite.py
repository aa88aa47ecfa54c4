"""The guarantee suite's declarations: a durable says what it has, or why it has not; nothing is silent."""

from __future__ import annotations

import pytest

from kumkm_shared.testing.guarantees import ConsumerGuarantees, NotApplicable, RefusalCase, RetryCase

pytestmark = pytest.mark.unit


async def _event(_harness: object) -> dict[str, object]:
    return {}


def test_a_concrete_suite_without_a_refusal_declaration_is_refused_at_collection() -> None:
    with pytest.raises(TypeError, match="must declare 'refusal'"):

        class TestForgetful(ConsumerGuarantees):
            durable = "toy"
            retry = RetryCase(event=_event, code="x")


def test_a_concrete_suite_without_a_retry_declaration_is_refused_at_collection() -> None:
    with pytest.raises(TypeError, match="must declare 'retry'"):

        class TestForgetful(ConsumerGuarantees):
            durable = "toy"
            refusal = NotApplicable("the toy has no refusal on the bus at all")


def test_a_declaration_must_be_a_case_or_not_applicable() -> None:
    with pytest.raises(TypeError, match="refusal must be declared as RefusalCase or NotApplicable"):

        class TestVague(ConsumerGuarantees):
            durable = "toy"
            refusal = None  # type: ignore[assignment]
            retry = NotApplicable("the toy never answers Retry from a handler")


def test_an_intermediate_base_is_not_checked() -> None:
    class SharedHooks(ConsumerGuarantees):
        durable = "toy"

    class TestComplete(SharedHooks):
        refusal = RefusalCase(event=_event, code="illegal_transition", announces=None)
        retry = NotApplicable("the toy never answers Retry from a handler")

    assert TestComplete.durable == "toy"


@pytest.mark.parametrize("reason", ["", "   ", "n/a", "no refusal"])
def test_not_applicable_without_a_real_reason_fails(reason: str) -> None:
    with pytest.raises(AssertionError, match="needs a reason"):
        ConsumerGuarantees.assert_declared(NotApplicable(reason))


def test_not_applicable_with_a_reason_passes() -> None:
    ConsumerGuarantees.assert_declared(NotApplicable("loans has no business refusal on the bus"))
