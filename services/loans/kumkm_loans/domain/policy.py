"""The COVID-19 restructuring policy (KepMenKopUKM 15/2020, POJK 11/2020 and 48/2020).

Rules: ``docs/rules/loans.md``, section "Restructuring policy".

``RestructuringPolicy.assess`` is pure: it takes the facts about a request and returns approved,
rejected or referred, each with machine-readable reason codes and Indonesian and English text.

- Any eligibility or limit rule that fails rejects the request (an officer cannot approve beyond policy).
- A non-COVID reason, or an outstanding principal above the auto-approval limit, refers it to an officer.
- Otherwise it is approved automatically.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from kumkm_loans.domain.restructuring import LoanPosition, Terms  # noqa: TC001 - dataclass fields
from kumkm_shared.contracts.loans import RestructuringReason
from kumkm_shared.money import format_rupiah

__all__ = ["Assessment", "Outcome", "PolicyLimits", "PolicyReason", "RequestFacts", "RestructuringPolicy"]


class Outcome(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"
    REFERRED = "referred"


@dataclass(frozen=True, slots=True)
class PolicyReason:
    code: str
    text_id: str
    text_en: str


@dataclass(frozen=True, slots=True)
class PolicyLimits:
    """The policy's limits. These defaults are the one definition: ``LoansSettings`` defaults to them."""

    auto_approval_limit: Decimal = Decimal(10_000_000_000)
    window_start: date = date(2020, 3, 16)
    window_end: date = date(2022, 3, 31)
    collectibility_cutoff: date = date(2020, 2, 29)
    max_grade_at_cutoff: int = 3
    max_grace_months: int = 12
    max_extension_months: int = 24
    max_prior_restructurings: int = 2


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """Everything the policy looks at, gathered by the handler."""

    loan_active: bool
    reason: RestructuringReason
    requested_on: date
    reschedule_from: date
    grade_at_cutoff: int
    open_requests: int  # other requests of the same loan waiting for an officer
    prior_restructurings: int
    current_rate: Decimal
    position: LoanPosition
    terms: Terms


@dataclass(frozen=True, slots=True)
class Assessment:
    outcome: Outcome
    reasons: tuple[PolicyReason, ...] = ()

    @property
    def codes(self) -> list[str]:
        return [r.code for r in self.reasons]


def _id(amount: Decimal) -> str:
    return format_rupiah(amount, "id_ID")


def _en(amount: Decimal) -> str:
    return format_rupiah(amount, "en_US")


class RestructuringPolicy:
    def __init__(self, limits: PolicyLimits | None = None) -> None:
        self.limits = limits or PolicyLimits()

    def assess(self, facts: RequestFacts) -> Assessment:
        rejections = self.rejections(facts)
        if rejections:
            return Assessment(Outcome.REJECTED, tuple(rejections))
        referrals = self.referrals(facts)
        if referrals:
            return Assessment(Outcome.REFERRED, tuple(referrals))
        return Assessment(Outcome.APPROVED)

    def rejections(self, facts: RequestFacts) -> list[PolicyReason]:  # noqa: C901 - one branch per rule
        lim, terms, pos = self.limits, facts.terms, facts.position
        out: list[PolicyReason] = []
        if not facts.loan_active:
            out.append(
                PolicyReason(
                    "loan_not_active",
                    "Pinjaman tidak aktif (sudah lunas atau ditutup).",
                    "The loan is not active (repaid or closed).",
                )
            )
        if not lim.window_start <= facts.requested_on <= lim.window_end:
            out.append(
                PolicyReason(
                    "outside_policy_window",
                    f"Tanggal permohonan {facts.requested_on} di luar masa kebijakan "
                    f"{lim.window_start} s.d. {lim.window_end}.",
                    f"The request date {facts.requested_on} is outside the policy window "
                    f"{lim.window_start} to {lim.window_end}.",
                )
            )
        if facts.grade_at_cutoff > lim.max_grade_at_cutoff:
            out.append(
                PolicyReason(
                    "collectibility_at_cutoff",
                    f"Kolektibilitas pada {lim.collectibility_cutoff} adalah {facts.grade_at_cutoff}; "
                    "pinjaman yang bermasalah sebelum pandemi (kolektibilitas 4-5) "
                    "tidak dapat direstrukturisasi.",
                    f"Collectibility at {lim.collectibility_cutoff} was {facts.grade_at_cutoff}; a loan "
                    "non-performing before the pandemic (grade 4-5) cannot be restructured.",
                )
            )
        if facts.open_requests > 0:
            out.append(
                PolicyReason(
                    "open_request_exists",
                    "Masih ada permohonan restrukturisasi lain untuk pinjaman ini yang belum diputuskan.",
                    "Another restructuring request for this loan is still waiting for a decision.",
                )
            )
        if facts.prior_restructurings > lim.max_prior_restructurings:
            out.append(
                PolicyReason(
                    "too_many_restructurings",
                    f"Pinjaman sudah direstrukturisasi {facts.prior_restructurings} kali; "
                    f"paling banyak {lim.max_prior_restructurings} kali.",
                    f"The loan was already restructured {facts.prior_restructurings} times; "
                    f"the maximum is {lim.max_prior_restructurings}.",
                )
            )
        if terms.grace_months > lim.max_grace_months:
            out.append(
                PolicyReason(
                    "grace_too_long",
                    f"Masa tenggang {terms.grace_months} bulan melebihi batas {lim.max_grace_months} bulan.",
                    f"A grace period of {terms.grace_months} months exceeds the limit of "
                    f"{lim.max_grace_months} months.",
                )
            )
        if terms.extra_months > lim.max_extension_months:
            out.append(
                PolicyReason(
                    "extension_too_long",
                    f"Perpanjangan jangka waktu {terms.extra_months} bulan melebihi batas "
                    f"{lim.max_extension_months} bulan.",
                    f"A tenor extension of {terms.extra_months} months exceeds the limit of "
                    f"{lim.max_extension_months} months.",
                )
            )
        if terms.new_annual_rate is not None and terms.new_annual_rate > facts.current_rate:
            out.append(
                PolicyReason(
                    "rate_above_current",
                    f"Suku bunga baru {terms.new_annual_rate} lebih tinggi dari suku bunga saat ini "
                    f"{facts.current_rate}.",
                    f"The new rate {terms.new_annual_rate} is above the current rate {facts.current_rate}.",
                )
            )
        if not facts.requested_on <= facts.reschedule_from <= pos.maturity_on:
            out.append(
                PolicyReason(
                    "reschedule_from_invalid",
                    f"Tanggal mulai jadwal baru {facts.reschedule_from} harus antara tanggal permohonan "
                    f"{facts.requested_on} dan jatuh tempo akhir {pos.maturity_on}.",
                    f"reschedule_from {facts.reschedule_from} must be between the request date "
                    f"{facts.requested_on} and the maturity date {pos.maturity_on}.",
                )
            )
        if terms.principal_waiver > pos.principal_arrears:
            out.append(
                PolicyReason(
                    "principal_waiver_exceeds_arrears",
                    f"Keringanan tunggakan pokok {_id(terms.principal_waiver)} melebihi tunggakan pokok "
                    f"{_id(pos.principal_arrears)}.",
                    f"The principal arrears reduction of {_en(terms.principal_waiver)} exceeds the principal "
                    f"arrears of {_en(pos.principal_arrears)}.",
                )
            )
        if terms.interest_waiver > pos.interest_arrears:
            out.append(
                PolicyReason(
                    "interest_waiver_exceeds_arrears",
                    f"Keringanan tunggakan bunga {_id(terms.interest_waiver)} melebihi tunggakan bunga "
                    f"{_id(pos.interest_arrears)}.",
                    f"The interest arrears reduction of {_en(terms.interest_waiver)} exceeds the interest "
                    f"arrears of {_en(pos.interest_arrears)}.",
                )
            )
        return out

    def referrals(self, facts: RequestFacts) -> list[PolicyReason]:
        out: list[PolicyReason] = []
        if facts.reason not in {RestructuringReason.COVID19_DIRECT, RestructuringReason.COVID19_INDIRECT}:
            out.append(
                PolicyReason(
                    "reason_not_covid19",
                    "Alasan permohonan bukan dampak COVID-19; perlu penilaian petugas.",
                    "The reason is not COVID-19; an officer must review the request.",
                )
            )
        limit = self.limits.auto_approval_limit
        if facts.position.outstanding_principal > limit:
            out.append(
                PolicyReason(
                    "above_auto_approval_limit",
                    f"Sisa pokok {_id(facts.position.outstanding_principal)} melebihi batas persetujuan "
                    f"otomatis {_id(limit)}; perlu keputusan petugas.",
                    f"The outstanding principal of {_en(facts.position.outstanding_principal)} is above the "
                    f"auto-approval limit of {_en(limit)}; an officer must decide.",
                )
            )
        return out
