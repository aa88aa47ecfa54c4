"""The policy limits' defaults are defined once, by the domain's ``PolicyLimits``; the env overrides them."""

from __future__ import annotations

import dataclasses
import os
from datetime import date
from decimal import Decimal

import pytest

from kumkm_loans.domain import SECOND_APPROVAL_ABOVE, PolicyLimits, RestructuringPolicy
from kumkm_loans.settings import LoansSettings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _no_loans_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith("KUMKM_LOANS_"):
            monkeypatch.delenv(name)


def test_the_settings_default_to_the_domain_limits() -> None:
    assert LoansSettings().policy_limits() == PolicyLimits()
    assert RestructuringPolicy().limits == LoansSettings().policy_limits()


def test_an_environment_override_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUMKM_LOANS_AUTO_APPROVAL_LIMIT", "5000000000")
    monkeypatch.setenv("KUMKM_LOANS_POLICY_WINDOW_END", "2021-03-31")
    monkeypatch.setenv("KUMKM_LOANS_MAX_GRACE_MONTHS", "6")
    limits = LoansSettings().policy_limits()
    assert limits.auto_approval_limit == Decimal(5_000_000_000)
    assert limits.window_end == date(2021, 3, 31)
    assert limits.max_grace_months == 6
    # The rest keeps the domain's defaults.
    assert (
        dataclasses.replace(
            limits,
            auto_approval_limit=PolicyLimits().auto_approval_limit,
            window_end=PolicyLimits().window_end,
            max_grace_months=PolicyLimits().max_grace_months,
        )
        == PolicyLimits()
    )


def test_the_second_approval_threshold_defaults_to_the_domain_and_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert LoansSettings().second_approval_above == SECOND_APPROVAL_ABOVE == Decimal(1_000_000_000)
    monkeypatch.setenv("KUMKM_LOANS_SECOND_APPROVAL_ABOVE", "250000000")
    assert LoansSettings().second_approval_above == Decimal(250_000_000)
