"""The recovery monitor's rules, on plain values (docs/rules/monitoring.md)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from kumkm_monitoring.domain import (
    ActivityReport,
    Contribution,
    DayInterval,
    LoanFacts,
    MonthRange,
    Months,
    PartyFacts,
    Signal,
    SignalRules,
    Target,
    Targets,
    contribution,
    delta,
    month_label,
    month_of,
    parse_month,
    population_months,
    productive_months,
    ratio,
    share_text,
)

RULES = SignalRules()
KEY = ("Jawa Barat", "Kota Bekasi", "Jatisampurna", "cooperative")


def m(text: str) -> int:
    return parse_month(text)


def months(*pairs: tuple[str, str | None]) -> Months:
    return Months.union(MonthRange(m(a), None if b is None else m(b) + 1) for a, b in pairs)


def test_months_are_consecutive_integers() -> None:
    assert month_of(date(2021, 1, 31)) + 1 == month_of(date(2021, 2, 1))
    assert month_label(m("2021-12")) == "2021-12"
    assert m("2022-01") == m("2021-12") + 1
    for bad in ("2021-13", "2021-1", "21-01", "2021-00"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            parse_month(bad)


def test_an_interval_counts_in_every_month_it_touches() -> None:
    # 10 January + 90 days = 10 April (exclusive): January to April.
    assert DayInterval(date(2021, 1, 10), date(2021, 4, 10)).months() == MonthRange(
        m("2021-01"), m("2021-05")
    )
    # Ending on the 1st (exclusive) stops the month before.
    assert DayInterval(date(2021, 1, 10), date(2021, 3, 1)).months() == MonthRange(m("2021-01"), m("2021-03"))
    assert DayInterval(date(2021, 1, 10)).months() == MonthRange(m("2021-01"), None)
    assert DayInterval(date(2021, 1, 10), date(2021, 1, 10)).months() is None


def test_month_sets_merge_and_intersect() -> None:
    a = months(("2021-01", "2021-02"), ("2021-03", "2021-04"), ("2021-08", None))
    assert a == months(("2021-01", "2021-04"), ("2021-08", None))  # adjacent ranges merge
    assert a.intersect(months(("2021-02", "2021-09"))) == months(
        ("2021-02", "2021-04"), ("2021-08", "2021-09")
    )
    assert Months.from_sql(a.to_sql()) == a
    assert Months.from_sql("{[24253,24256)}") == Months((MonthRange(24253, 24256),))
    assert Months.from_sql("{}") == Months()


def test_a_repayment_counts_only_while_the_loan_performs() -> None:
    loan = LoanFacts(date(2019, 6, 15), grades=[(date(2021, 3, 1), 3)], repayments=[date(2021, 1, 10)])
    facts = PartyFacts(first_as_of=date(2020, 1, 15), closed_on=None, loans=[loan])
    assert productive_months(facts, RULES) == months(("2021-01", "2021-02"))
    # Back to grade 2 in April: the window still open (until 10 April) counts again.
    cured = LoanFacts(loan.disbursed_on, [*loan.grades, (date(2021, 4, 5), 2)], loan.repayments)
    facts = PartyFacts(first_as_of=date(2020, 1, 15), closed_on=None, loans=[cured])
    assert productive_months(facts, RULES) == months(("2021-01", "2021-02"), ("2021-04", "2021-04"))


def test_a_sale_delivered_or_paid_opens_the_window() -> None:
    facts = PartyFacts(date(2020, 2, 1), None, sales=[date(2021, 3, 5), date(2021, 3, 25)])
    assert productive_months(facts, RULES) == months(("2021-03", "2021-06"))
    shorter = SignalRules(window_days=10)
    assert productive_months(facts, shorter) == months(("2021-03", "2021-04"))


def test_an_operating_report_holds_until_the_next_report() -> None:
    reports = [
        ActivityReport(date(2021, 2, 15), operating=True),
        ActivityReport(date(2021, 5, 1), operating=False),
    ]
    facts = PartyFacts(date(2020, 1, 15), None, activity=reports)
    assert productive_months(facts, RULES) == months(("2021-02", "2021-04"))
    latest = PartyFacts(date(2020, 1, 15), None, activity=[ActivityReport(date(2021, 2, 15), operating=True)])
    assert productive_months(latest, RULES) == months(("2021-02", None))


def test_the_population_runs_from_registration_to_dissolution() -> None:
    facts = PartyFacts(
        date(2020, 1, 15), date(2021, 2, 10), activity=[ActivityReport(date(2020, 12, 1), operating=True)]
    )
    assert population_months(facts) == months(("2020-01", "2021-02"))
    assert productive_months(facts, RULES) == months(("2020-12", "2021-02"))
    # Signals before registration do not count.
    early = PartyFacts(date(2021, 4, 20), None, sales=[date(2021, 3, 25)])
    assert productive_months(early, RULES) == months(("2021-04", "2021-06"))


def test_a_disabled_signal_does_not_count() -> None:
    facts = PartyFacts(date(2020, 1, 1), None, sales=[date(2021, 3, 5)])
    assert (
        productive_months(facts, SignalRules(signals=frozenset({Signal.LOAN, Signal.ACTIVITY}))) == Months()
    )
    assert SignalRules(signals=frozenset({Signal.ACTIVITY, Signal.LOAN})).enabled == (
        Signal.LOAN,
        Signal.ACTIVITY,
    )
    with pytest.raises(ValueError, match="window_days"):
        SignalRules(window_days=0)


def test_the_delta_moves_a_party_between_regions() -> None:
    facts = PartyFacts(date(2021, 1, 5), None, activity=[ActivityReport(date(2021, 3, 1), operating=True)])
    first = contribution(KEY, facts, RULES)
    assert delta(None, first) == {(KEY, m("2021-01")): (1, 0), (KEY, m("2021-03")): (0, 1)}
    assert delta(first, first) == {}
    moved_key = ("Jawa Barat", "Kota Bekasi", "Bekasi Timur", "cooperative")
    moved = Contribution(moved_key, first.population, first.productive)
    change = delta(first, moved)
    assert change[(KEY, m("2021-01"))] == (-1, 0)
    assert change[(moved_key, m("2021-01"))] == (1, 0)
    # A running sum of the differences gives the count in each month.
    closed = contribution(KEY, PartyFacts(date(2021, 1, 5), date(2021, 2, 3)), RULES)
    running, by_month = 0, {}
    for (_, month), (registered, _) in sorted(delta(None, closed).items(), key=lambda kv: kv[0][1]):
        running += registered
        by_month[month] = running
    assert by_month == {m("2021-01"): 1, m("2021-03"): 0}


def test_targets_and_shares() -> None:
    targets = Targets()
    bekasi = targets.find("jawa barat", "KOTA  BEKASI", "cooperative")
    assert bekasi is not None
    assert (bekasi.population, bekasi.count) == (647, 421)  # ceil(0.65 * 647) = ceil(420.55)
    umkm = targets.find("Jawa Barat", "Kota Bekasi", "umkm")
    assert umkm is not None
    assert umkm.count == 131_950
    assert targets.share_for("Jawa Barat", "Kota Bekasi", None) == Decimal("0.65")
    assert targets.share_for("Jawa Timur", None, "umkm") == Decimal("0.65")  # the default
    own = Targets.of([Target("Jawa Timur", None, "umkm", Decimal("0.5"))], Decimal("0.6"))
    assert own.share_for("Jawa Timur", "Kota Surabaya", "umkm") == Decimal("0.5")  # the province's
    assert own.share_for("Jawa Timur", "Kota Surabaya", "cooperative") == Decimal("0.6")
    with pytest.raises(ValueError, match="between 0 and 1"):
        Target("Jawa Barat", None, "umkm", Decimal("1.2"))
    assert ratio(1, 3) == Decimal("0.3333")
    assert ratio(2, 3) == Decimal("0.6667")
    assert ratio(1, 0) is None
    assert share_text(Decimal("0.65")) == "0.6500"
    assert share_text(None) is None
