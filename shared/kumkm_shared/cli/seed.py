"""The Kota Bekasi sample of ``kumkm up --demo`` (and ``kumkm demo seed``): a deterministic registry of
647 cooperatives and about 3,000 UMKM over the city's 12 kecamatan, three rounds of the city's activity
survey, a few loans with their repayments, and a few e-catalog sales, so the monitoring dashboard shows
real numbers.

Who publishes what, as in production:
- the registry organisation ``disdagkop-bekasi`` (Dinas Perdagangan dan Koperasi Kota Bekasi; role
  ``registry``, mandate every party) publishes the registry events and the activity reports on
  ``<type>.disdagkop-bekasi`` with its own NATS identity (a user issued from the auth directory, as
  ``kumkm integrators add`` issues one; its creds are kept 0600 under ``<data_dir>/demo``);
- the lender ``lpdb-kumkm`` publishes the loans' disbursements and repayments with its own identity too;
- the sales go through the catalog's HTTP API, as the demo's integrator (the sellers' and the buyer's
  system), with ``curator.bekasi`` curating each product.

Everything is generated from a fixed random seed: the same parties, numbers, names, kecamatan, types and
survey answers on every run. Dates of the survey rounds, loans and repayments are counted back from the
first day of the current month (``anchor``), so the current month's dashboard has figures and re-seeding
within a month publishes identical events: event ids are uuid5 over the publisher and the event's data,
so JetStream's de-duplication and the services' inboxes take a repeat as a no-op.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kumkm_shared.contracts import spec_for, validate_event_payload
from kumkm_shared.contracts.regions import (
    JAWA_BARAT,
    KOTA_BEKASI,
    KOTA_BEKASI_DISTRICTS,
    District,
)
from kumkm_shared.integrators import IntegratorRole, sender_subject
from kumkm_shared.mandates import ALL_PARTIES, Grant, Mandate, MandateBook
from kumkm_shared.messaging.outbox import nats_headers
from kumkm_shared.natsauth import AuthDir, decode

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from nats.js import JetStreamContext
    from rich.console import Console

    from kumkm_shared.cli.runinfo import RunInfo

SEED = 13  # any fixed number: the sample is the same on every run
PROVINCE, CITY = JAWA_BARAT, KOTA_BEKASI
COOPERATIVES = 647  # the deputy mayor's figure
UMKM = 3_000  # a sample of the city's 203,000
REGISTRY_ORG = "disdagkop-bekasi"
REGISTRY_NAME = "Dinas Perdagangan dan Koperasi Kota Bekasi"
LENDER_ORG, LENDER = "lpdb-kumkm", "LPDB-KUMKM"
SOURCE = "kumkm/demo-seed"
_NAMESPACE = uuid.UUID("6f1c1d2e-13a4-4b5e-9c0d-5e1ab3c0de13")

COOPERATIVE_REGISTERED = "kumkm.registry.cooperative.registered.v1"
COOPERATIVE_UPDATED = "kumkm.registry.cooperative.updated.v1"
UMKM_REGISTERED = "kumkm.registry.umkm.registered.v1"
UMKM_UPDATED = "kumkm.registry.umkm.updated.v1"
ACTIVITY_REPORTED = "kumkm.registry.activity.reported.v1"
DISBURSED = "kumkm.loans.loan.disbursed.v1"
REPAID = "kumkm.loans.repayment.received.v1"

# Share of the city's parties in each kecamatan (roughly its share of the population), by official code.
DISTRICT_WEIGHTS: dict[str, int] = {
    "32.75.01": 95,  # Bekasi Timur
    "32.75.02": 100,  # Bekasi Barat
    "32.75.03": 135,  # Bekasi Utara
    "32.75.04": 80,  # Bekasi Selatan
    "32.75.05": 80,  # Rawalumbu
    "32.75.06": 65,  # Medan Satria
    "32.75.07": 40,  # Bantargebang
    "32.75.08": 90,  # Pondokgede
    "32.75.09": 90,  # Jatiasih
    "32.75.10": 45,  # Jatisampurna
    "32.75.11": 70,  # Mustikajaya
    "32.75.12": 50,  # Pondokmelati
}

# The Kranggan story's parties (kumkm_shared.cli.demo) are part of the registry too.
STORY_COOPERATIVES = (
    ("3275010101010001", "Koperasi Pedagang Pasar Kranggan", "market_traders"),
    ("3275010101010002", "Koperasi Simpan Pinjam Jatisampurna", "savings_and_loan"),
)
STORY_UMKM = (("9120001234567", "CV Meubel Jati Kranggan", "small", "31001"),)
STORY_DISTRICT = "32.75.10"  # Pasar Kranggan is in Kecamatan Jatisampurna

COOPERATIVE_TYPES = (  # (type, weight, name prefix)
    ("savings_and_loan", 30, "Koperasi Simpan Pinjam"),
    ("consumer", 18, "Koperasi Konsumen"),
    ("multipurpose", 20, "Koperasi Serba Usaha"),
    ("market_traders", 8, "Koperasi Pedagang Pasar"),
    ("producer", 8, "Koperasi Produsen"),
    ("services", 8, "Koperasi Jasa"),
    ("marketing", 5, "Koperasi Pemasaran"),
    ("other", 3, "Koperasi"),
)
SCALES = (("micro", 84), ("small", 13), ("medium", 3))
SECTORS = (  # (KBLI, weight, name word, product)
    ("56102", 22, "Warung Makan", "Nasi kotak"),
    ("47111", 18, "Toko Kelontong", "Paket sembako"),
    ("10792", 9, "Kue", "Kue kering"),
    ("14111", 8, "Konveksi", "Seragam sekolah"),
    ("31001", 6, "Mebel", "Meja belajar kayu"),
    ("95230", 5, "Reparasi", "Servis perangkat"),
    ("13921", 5, "Tekstil", "Tas kain"),
    ("47711", 6, "Busana", "Batik tulis"),
    ("01135", 5, "Tani", "Sayur organik"),
    ("96011", 4, "Laundry", "Jasa binatu"),
    ("10750", 6, "Katering", "Katering rapat"),
    ("22220", 3, "Plastik", "Wadah plastik"),
    ("25920", 3, "Bengkel Las", "Pagar besi"),
)
_WORDS = (
    "Maju",
    "Sejahtera",
    "Mandiri",
    "Berkah",
    "Makmur",
    "Sentosa",
    "Bersama",
    "Harapan",
    "Karya",
    "Mitra",
    "Usaha",
    "Jaya",
    "Abadi",
    "Sumber Rezeki",
    "Sinar",
    "Mulia",
    "Amanah",
    "Barokah",
    "Lestari",
    "Rukun",
)
_FORMS = ("CV", "UD", "Toko", "Usaha")
# Survey rounds: (months before the anchor, share of parties reached, chance of operating).
ROUNDS = (
    (10, Decimal("0.80"), Decimal("0.30")),
    (4, Decimal("0.85"), Decimal("0.38")),
    (1, Decimal("0.75"), Decimal("0.42")),
)
LOANS = 24  # to cooperatives (16) and UMKM (8); 4 of them stopped paying
STOPPED_PAYING = 4
DISSOLVED_SHARE = 0.03  # cooperatives dissolved in 2024-2025
CLOSED_SHARE = 0.04  # UMKM closed from mid-2024
STILL_OPERATING = 0.85  # chance a party operating at one survey round still is at the next
SALES = 8  # e-catalog sales by UMKM of the sample, delivered and paid


@dataclass(frozen=True)
class Party:
    kind: str  # cooperative | umkm
    id: str
    name: str
    district: District
    registered_on: date
    category: str  # cooperative_type, or the UMKM's scale
    kbli: str = ""
    member_count: int = 0
    closed_on: date | None = None  # dissolved (cooperative) or closed (UMKM)

    @property
    def region(self) -> dict[str, str]:
        return {
            "province": PROVINCE,
            "city": CITY,
            "district": self.district.name,
            "code": self.district.code,
        }

    @property
    def borrower(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "name": self.name, "region": self.region}


@dataclass(frozen=True)
class Report:
    party: Party
    as_of: date
    operating: bool
    revenue_band: str
    survey: str


@dataclass(frozen=True)
class Loan:
    loan_id: str
    party: Party
    principal: Decimal
    annual_rate: Decimal
    tenor_months: int
    disbursed_on: date
    first_due_on: date
    installment: Decimal
    repayments: tuple[date, ...]


@dataclass(frozen=True)
class Sale:
    party: Party
    product_id: str
    product: str
    order_id: str
    qty: int
    unit_price: Decimal


@dataclass(frozen=True)
class Sample:
    anchor: date
    today: date
    cooperatives: tuple[Party, ...]
    umkm: tuple[Party, ...]
    reports: tuple[Report, ...]
    loans: tuple[Loan, ...]
    sales: tuple[Sale, ...]

    @property
    def parties(self) -> tuple[Party, ...]:
        return self.cooperatives + self.umkm

    def counts_by_district(self, kind: str) -> dict[str, int]:
        counts = dict.fromkeys((d.name for d in districts()), 0)
        for party in self.parties:
            if party.kind == kind:
                counts[party.district.name] += 1
        return counts

    def registry_events(self) -> list[dict[str, Any]]:
        """Registrations, then dissolutions and closures, then the survey's reports (by date)."""
        events = [_registered(p) for p in self.parties]
        events += [_closed(p) for p in self.parties if p.closed_on is not None]
        events += [_report(r) for r in sorted(self.reports, key=lambda r: (r.as_of, r.party.id))]
        return [event(t, d, REGISTRY_ORG) for t, d in events]

    def loan_events(self) -> list[dict[str, Any]]:
        """Each loan's disbursement, then its repayments in date order."""
        out: list[dict[str, Any]] = []
        for loan in self.loans:
            out.append(event(DISBURSED, _disbursed(loan), LENDER_ORG))
            for number, paid_on in enumerate(loan.repayments, start=1):
                out.append(event(REPAID, _repaid(loan, number, paid_on), LENDER_ORG))
        return out

    def sellers(self) -> tuple[str, ...]:
        return tuple(sale.party.id for sale in self.sales)


def districts() -> tuple[District, ...]:
    """Kota Bekasi's 12 kecamatan (``kumkm_shared.contracts.regions``)."""
    return KOTA_BEKASI_DISTRICTS


def split(total: int, weights: dict[str, int]) -> dict[str, int]:
    """``total`` shared out by ``weights`` (largest remainder): deterministic, and the parts add up."""
    whole = sum(weights.values())
    exact = {key: Decimal(total * weight) / whole for key, weight in weights.items()}
    parts = {key: int(value) for key, value in exact.items()}
    left = total - sum(parts.values())
    by_remainder = sorted(weights, key=lambda k: (-(exact[k] - parts[k]), k))
    for key in by_remainder[:left]:
        parts[key] += 1
    return parts


def _pick(rng: random.Random, options: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
    return rng.choices(options, weights=[o[1] for o in options])[0]


def _day(rng: random.Random, start: date, end: date) -> date:
    return start + timedelta(days=rng.randrange((end - start).days + 1))


def _months_before(anchor: date, months: int) -> date:
    year, month = divmod(anchor.year * 12 + anchor.month - 1 - months, 12)
    return date(year, month + 1, 1)


def _add_months(day: date, months: int) -> date:
    first = _months_before(day.replace(day=1), -months)
    return first.replace(day=min(day.day, 28))


def _chance(rng: random.Random, p: Decimal) -> bool:
    return Decimal(rng.random()) < p


def _cooperatives(rng: random.Random, by_code: dict[str, District]) -> list[Party]:
    counts = split(COOPERATIVES, DISTRICT_WEIGHTS)
    counts[STORY_DISTRICT] -= len(STORY_COOPERATIVES)
    parties = [
        Party(
            "cooperative",
            number,
            name,
            by_code[STORY_DISTRICT],
            date(2009, 3, 12),
            kind,
            member_count=212 + 60 * i,
        )
        for i, (number, name, kind) in enumerate(STORY_COOPERATIVES)
    ]
    for code in sorted(counts):
        district = by_code[code]
        for seq in range(1, counts[code] + 1):
            kind, _, prefix = _pick(rng, COOPERATIVE_TYPES)
            word = rng.choice(_WORDS)
            parties.append(
                Party(
                    kind="cooperative",
                    id=f"3275{code[-2:]}2{seq:09d}",
                    name=f"{prefix} {word} {district.name} {seq:03d}",
                    district=district,
                    registered_on=_day(rng, date(1995, 1, 1), date(2023, 12, 31)),
                    category=kind,
                    member_count=rng.randint(20, 900),
                    closed_on=_day(rng, date(2024, 1, 1), date(2025, 12, 31))
                    if rng.random() < DISSOLVED_SHARE
                    else None,
                )
            )
    return parties


def _umkm(rng: random.Random, by_code: dict[str, District]) -> list[Party]:
    counts = split(UMKM, DISTRICT_WEIGHTS)
    counts[STORY_DISTRICT] -= len(STORY_UMKM)
    parties = [
        Party("umkm", nib, name, by_code[STORY_DISTRICT], date(2016, 8, 1), scale, kbli)
        for nib, name, scale, kbli in STORY_UMKM
    ]
    for code in sorted(counts):
        district = by_code[code]
        for seq in range(1, counts[code] + 1):
            (scale, _) = _pick(rng, SCALES)
            kbli, _, word, _ = _pick(rng, SECTORS)
            parties.append(
                Party(
                    kind="umkm",
                    id=f"8120{code[-2:]}{seq:07d}",
                    name=f"{rng.choice(_FORMS)} {word} {rng.choice(_WORDS)} {seq:04d}",
                    district=district,
                    registered_on=_day(rng, date(2012, 1, 1), date(2024, 6, 30)),
                    category=scale,
                    kbli=kbli,
                    closed_on=_day(rng, date(2024, 7, 1), date(2025, 12, 31))
                    if rng.random() < CLOSED_SHARE
                    else None,
                )
            )
    return parties


def _band(rng: random.Random, party: Party, operating: bool) -> str:
    if not operating:
        return "none"
    if party.kind == "umkm":
        bands = {
            "micro": (("up_to_300m", 70), ("300m_to_2b", 30)),
            "small": (("300m_to_2b", 20), ("2b_to_15b", 80)),
            "medium": (("2b_to_15b", 30), ("15b_to_50b", 70)),
        }[party.category]
        return str(_pick(rng, bands)[0])
    return rng.choices(("up_to_300m", "300m_to_2b", "2b_to_15b", "15b_to_50b"), weights=(45, 35, 15, 5))[0]


def _reports(rng: random.Random, parties: Iterable[Party], anchor: date) -> list[Report]:
    reports = []
    for party in parties:
        operating_before = False
        for months, reached, operating_share in ROUNDS:
            start = _months_before(anchor, months)
            if party.closed_on is not None and party.closed_on < start:
                break
            if not _chance(rng, reached):
                continue
            # Who was operating mostly still is; others come back at the round's rate.
            operating = rng.random() < STILL_OPERATING if operating_before else _chance(rng, operating_share)
            operating_before = operating
            reports.append(
                Report(
                    party=party,
                    as_of=_day(rng, start, start.replace(day=28)),
                    operating=operating,
                    revenue_band=_band(rng, party, operating),
                    survey=f"BEKASI-{start:%Y-%m}",
                )
            )
    return reports


def annuity(principal: Decimal, annual_rate: Decimal, months: int) -> Decimal:
    """The monthly instalment of an annuity, rounded up to the rupiah."""
    rate = annual_rate / 12
    payment = principal * rate / (1 - (1 + rate) ** -months)
    return payment.quantize(Decimal(1), rounding=ROUND_CEILING)


def _loans(rng: random.Random, cooperatives: list[Party], umkm: list[Party], sample: _Dates) -> list[Loan]:
    active_c = [p for p in cooperatives[len(STORY_COOPERATIVES) :] if p.closed_on is None]
    active_u = [p for p in umkm[len(STORY_UMKM) :] if p.closed_on is None and p.category != "micro"]
    borrowers = rng.sample(active_c, 16) + rng.sample(active_u, 8)
    loans = []
    for number, party in enumerate(borrowers, start=1):
        principal = Decimal(rng.randrange(50, 1_500, 25) * 1_000_000)
        rate, tenor = Decimal("0.06"), rng.choice((24, 36, 48))
        disbursed = _day(rng, _months_before(sample.anchor, 9), _months_before(sample.anchor, 8))
        first_due = _add_months(disbursed, 1)
        installments = [_add_months(first_due, k) for k in range(tenor)]
        paid = [d for d in installments if d <= sample.today]
        if number <= STOPPED_PAYING:  # stopped after three instalments: no repayment in the last 90 days
            paid = paid[:3]
        loans.append(
            Loan(
                loan_id=f"LN-BKS-{sample.anchor:%Y%m}-{number:03d}",
                party=party,
                principal=principal,
                annual_rate=rate,
                tenor_months=tenor,
                disbursed_on=disbursed,
                first_due_on=first_due,
                installment=annuity(principal, rate, tenor),
                repayments=tuple(paid),
            )
        )
    return loans


def _sales(rng: random.Random, umkm: list[Party], anchor: date) -> list[Sale]:
    sellers = [p for p in umkm[len(STORY_UMKM) :] if p.closed_on is None]
    products = {kbli: product for kbli, _, _, product in SECTORS}
    sales = []
    for number, party in enumerate(rng.sample(sellers, SALES), start=1):
        suffix = f"{anchor:%Y%m}-{number:03d}"
        sales.append(
            Sale(
                party=party,
                product_id=f"PRD-BKS-{suffix}",
                product=products[party.kbli],
                order_id=f"ORD-BKS-{suffix}",
                qty=rng.choice((10, 20, 40, 60)),
                unit_price=Decimal(rng.randrange(50, 2_500, 25) * 1_000),
            )
        )
    return sales


def _rng(name: str) -> random.Random:
    """A generator with a fixed seed: the sample is the same on every run (not for secrets)."""
    return random.Random(name)  # noqa: S311 - deterministic on purpose


def sample_sellers() -> tuple[str, ...]:
    """The NIBs of the sample's sellers (the same every month): the demo integrator's seller mandate."""
    return generate(date(2000, 1, 1)).sellers()


@dataclass(frozen=True)
class _Dates:
    anchor: date
    today: date


def generate(today: date | None = None, *, seed: int = SEED) -> Sample:
    """The sample for the month of ``today`` (default: today's date in UTC)."""
    today = today or datetime.now(UTC).date()
    dates = _Dates(anchor=today.replace(day=1), today=today)
    by_code = {d.code: d for d in districts()}
    # One generator per part: adding loans never changes the registry, and the registry never the survey.
    cooperatives = _cooperatives(_rng(f"{seed}-cooperatives"), by_code)
    umkm = _umkm(_rng(f"{seed}-umkm"), by_code)
    reports = _reports(_rng(f"{seed}-survey-{dates.anchor}"), [*cooperatives, *umkm], dates.anchor)
    loans = _loans(_rng(f"{seed}-loans"), cooperatives, umkm, dates)
    sales = _sales(_rng(f"{seed}-sales"), umkm, dates.anchor)
    return Sample(
        anchor=dates.anchor,
        today=today,
        cooperatives=tuple(cooperatives),
        umkm=tuple(umkm),
        reports=tuple(reports),
        loans=tuple(loans),
        sales=tuple(sales),
    )


# ---- events ------------------------------------------------------------------------------------------


def event(event_type: str, data: dict[str, Any], publisher: str) -> dict[str, Any]:
    """A CloudEvents envelope whose id is a uuid5 of the publisher, the type and the data."""
    import json

    key = json.dumps([publisher, event_type, data], sort_keys=True, default=str)
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid5(_NAMESPACE, key)),
        "source": SOURCE,
        "type": event_type,
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }


def _registered(party: Party) -> tuple[str, dict[str, Any]]:
    return _party_event(party, "active", party.registered_on, updated=False)


def _closed(party: Party) -> tuple[str, dict[str, Any]]:
    assert party.closed_on is not None  # noqa: S101 - only called for closed parties
    status = "dissolved" if party.kind == "cooperative" else "closed"
    return _party_event(party, status, party.closed_on, updated=True)


def _party_event(party: Party, status: str, as_of: date, *, updated: bool) -> tuple[str, dict[str, Any]]:
    common = {"name": party.name, "status": status, "region": party.region, "as_of": as_of.isoformat()}
    if party.kind == "cooperative":
        data = {
            "cooperative_number": party.id,
            "cooperative_type": party.category,
            "member_count": party.member_count,
            **common,
        }
        return (COOPERATIVE_UPDATED if updated else COOPERATIVE_REGISTERED), data
    data = {"nib": party.id, "scale": party.category, "kbli": party.kbli, **common}
    return (UMKM_UPDATED if updated else UMKM_REGISTERED), data


def _report(report: Report) -> tuple[str, dict[str, Any]]:
    return ACTIVITY_REPORTED, {
        "party_kind": report.party.kind,
        "party_id": report.party.id,
        "operating": report.operating,
        "revenue_band": report.revenue_band,
        "as_of": report.as_of.isoformat(),
        "survey": report.survey,
    }


def _disbursed(loan: Loan) -> dict[str, Any]:
    return {
        "loan_id": loan.loan_id,
        "lender": LENDER,
        "borrower": loan.party.borrower,
        "principal": f"{loan.principal:.2f}",
        "annual_rate": str(loan.annual_rate),
        "tenor_months": loan.tenor_months,
        "method": "annuity",
        "disbursed_on": loan.disbursed_on.isoformat(),
        "first_due_on": loan.first_due_on.isoformat(),
    }


def _repaid(loan: Loan, number: int, paid_on: date) -> dict[str, Any]:
    return {
        "payment_id": f"PAY-{loan.loan_id}-{number:03d}",
        "loan_id": loan.loan_id,
        "amount": f"{loan.installment:.2f}",
        "paid_on": paid_on.isoformat(),
        "channel": "virtual_account",
        "reference": f"VA/{loan.loan_id}/{number:03d}",
    }


def product_body(sale: Sale) -> dict[str, Any]:
    party = sale.party
    return {
        "product_id": sale.product_id,
        "revision": 1,
        "seller": {"nib": party.id, "name": party.name, "scale": party.category, "region": party.region},
        "name": f"{sale.product} {party.district.name}",
        "category": "other",
        "unit": "pcs",
        "unit_price": f"{sale.unit_price:.2f}",
        "min_order_qty": 1,
        "stock": 1_000,
        "tkdn_pct": "60",
        "certifications": [],
        "description": f"{sale.product} buatan {party.name}, Kecamatan {party.district.name}.",
    }


def order_body(sale: Sale, buyer: dict[str, Any], today: date) -> dict[str, Any]:
    return {
        "order_id": sale.order_id,
        "buyer": buyer,
        "budget": {"rup_code": f"RUP-{sale.order_id}", "fiscal_year": today.year},
        "lines": [{"product_id": sale.product_id, "qty": sale.qty, "unit_price": f"{sale.unit_price:.2f}"}],
        "delivery": {
            "address": "Jl. Ir. H. Juanda No. 100, Kota Bekasi",
            "needed_by": (today + timedelta(days=30)).isoformat(),
        },
    }


def order_steps(sale: Sale, today: date) -> list[tuple[str, dict[str, Any]]]:
    day = today.isoformat()
    return [
        ("confirm", {}),
        ("ship", {"carrier": "JNE"}),
        ("deliver", {"bast_number": f"BAST/{sale.order_id}", "delivered_on": day, "received_by": "Rina W."}),
        ("pay", {"payment_reference": f"SP2D/{sale.order_id}", "paid_on": day}),
    ]


# ---- publishing --------------------------------------------------------------------------------------


@dataclass
class Published:
    registry: int = 0
    loans: int = 0
    sales: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


async def publish_events(
    js: JetStreamContext,
    events: Sequence[dict[str, Any]],
    publisher: str,
    *,
    window: int = 1_000,
    ack_wait: float = 30.0,
) -> int:
    """Publish ``events`` on ``<type>.<publisher>``, pipelined (at most ``window`` PubAcks outstanding); raise
    on the first refused publish. The events are validated first: a bad one is never sent."""
    timeout = ack_wait
    decoded = [validate_event_payload(e) for e in events]
    pending: set[asyncio.Future[Any]] = set()
    sent = 0
    for item in decoded:
        env = item.envelope
        future = await js.publish_async(
            sender_subject(env.type, publisher),
            env.to_json_bytes(),
            headers=nats_headers(env),
            stream=spec_for(env.type).stream,
            wait_stall=timeout,
        )
        pending.add(future)
        if len(pending) >= window:
            done, pending = await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                raise TimeoutError(f"no PubAck for {timeout:.0f}s while publishing as {publisher}")
            for f in done:
                f.result()
            sent += len(done)
    if pending:
        done, late = await asyncio.wait(pending, timeout=timeout)
        if late:
            raise TimeoutError(f"{len(late)} publishes as {publisher} got no PubAck within {timeout:.0f}s")
        for f in done:
            f.result()
        sent += len(done)
    return sent


def creds_folder(data_dir: Path) -> Path:
    folder = data_dir / "demo"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


class StaleAuthDirError(RuntimeError):
    """The auth directory's role template predates event types the role may publish now."""


def _check_role_template(auth: AuthDir, role: IntegratorRole) -> None:
    """Fail at once, saying why, when the scoped key for ``role`` (signed at `kumkm nats init`)
    does not allow every type the role has now: the server would drop those publishes without a PubAck."""
    from kumkm_shared.integrators import ROLE_EVENTS
    from kumkm_shared.natsauth.authdir import INTEGRATORS

    claims = decode(auth.account_jwt(INTEGRATORS)).nats  # the organisations' account: the role keys
    allowed = {
        subject
        for key in claims.get("signing_keys", [])
        if isinstance(key, dict) and key.get("role") == str(role)
        for subject in key.get("template", {}).get("pub", {}).get("allow", [])
    }
    missing = [t for t in ROLE_EVENTS[role] if f"{t}.{{{{name()}}}}" not in allowed]
    if missing:
        raise StaleAuthDirError(
            f"the NATS auth directory {auth.root} was created before role {role} could publish "
            f"{', '.join(missing)}; start from a new data folder (or a new `kumkm nats init`)"
        )


async def organisation_identity(
    js: JetStreamContext,
    auth_dir: Path,
    data_dir: Path,
    organisation: str,
    role: IntegratorRole,
    parties: tuple[str, ...],
    name: str,
) -> Path:
    """The organisation's .creds for ``role`` (issued once, as `kumkm integrators add` does, kept 0600
    under ``<data_dir>/demo``), with a mandate for ``parties`` that names its user key."""

    book = MandateBook(js)
    await book.ensure_bucket()
    current = await book.get(organisation)
    path = creds_folder(data_dir) / f"{organisation}.{role}.creds"
    grant = current.grant(role) if current is not None and current.active else None
    if grant is not None and path.exists() and grant.user_keys and set(grant.parties) == set(parties):
        return path
    auth = AuthDir(auth_dir)
    _check_role_template(auth, role)
    issued = auth.issue_integrator(organisation, role)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(issued.creds)
    keys = (*(grant.user_keys if grant else ()), issued.public_key)
    new = Grant(role=role, parties=parties, user_keys=keys)
    if current is None or not current.active:
        mandate = Mandate(organisation=organisation, name=name, grants=(new,), granted_by="kumkm up --demo")
    else:
        others = tuple(g for g in current.grants if g.role != role)
        mandate = current.model_copy(update={"grants": (*others, new)})
    await book.put(mandate)
    return path


async def org_connection(info: RunInfo, creds: Path | None, organisation: str) -> Any:
    import nats

    options: dict[str, Any] = {
        "name": f"kumkm-seed-{organisation}",
        "connect_timeout": 5,
        "max_reconnect_attempts": 3,
    }
    if creds is not None:
        options["user_credentials"] = str(creds)
        options["inbox_prefix"] = f"_INBOX_{organisation}".encode()
    return await nats.connect(info.nats_url.split(","), **options)


async def _publish_as(
    info: RunInfo,
    data_dir: Path,
    organisation: str,
    role: IntegratorRole,
    parties: tuple[str, ...],
    name: str,
    events: Sequence[dict[str, Any]],
) -> int:
    """Publish as the organisation itself (its own NATS user) when NATS runs in operator mode; else (NATS
    given by URL without an auth directory) as the CLI's user, still on the organisation's subjects."""
    from kumkm_shared.cli.connect import connect

    async with connect(info, name="kumkm-seed") as operator:
        creds = None
        if info.nats_auth_dir:
            creds = await organisation_identity(
                operator.jetstream(), Path(info.nats_auth_dir), data_dir, organisation, role, parties, name
            )
        else:
            book = MandateBook(operator.jetstream())
            await book.ensure_bucket()
            if await book.get(organisation) is None:
                grant = Grant(role=role, parties=parties)
                await book.put(
                    Mandate(
                        organisation=organisation, name=name, grants=(grant,), granted_by="kumkm up --demo"
                    )
                )
        if creds is None:
            return await publish_events(operator.jetstream(), events, organisation)
    nc = await org_connection(info, creds, organisation)
    try:
        return await publish_events(nc.jetstream(), events, organisation)
    finally:
        await nc.drain()


async def seed(info: RunInfo, data_dir: Path, console: Console, sample: Sample | None = None) -> Published:
    """Publish the sample: the registry as ``disdagkop-bekasi``, the loans as ``lpdb-kumkm``, the sales over
    the catalog's HTTP API (when the catalog runs and the demo realm is at hand)."""
    sample = sample or generate()
    result = Published()
    started = time.perf_counter()
    result.registry = await _publish_as(
        info,
        data_dir,
        REGISTRY_ORG,
        IntegratorRole.REGISTRY,
        (ALL_PARTIES,),
        REGISTRY_NAME,
        sample.registry_events(),
    )
    console.print(
        f"seed: {len(sample.cooperatives)} cooperatives, {len(sample.umkm)} UMKM "
        f"in {len(districts())} kecamatan, "
        f"{len(sample.reports)} activity reports: {result.registry} events published as {REGISTRY_ORG}"
    )
    if "loans" in info.services or not info.services:
        result.loans = await _publish_as(
            info,
            data_dir,
            LENDER_ORG,
            IntegratorRole.LENDER,
            (LENDER,),
            "LPDB-KUMKM core banking",
            sample.loan_events(),
        )
        console.print(
            f"seed: {len(sample.loans)} loans and their repayments: "
            f"{result.loans} events published as {LENDER_ORG}"
        )
    catalog = info.services.get("catalog")
    if catalog and info.auth_issuer and info.auth_realm:
        result.sales = await _sell(info, catalog, sample, console)
    else:
        result.notes.append("sales skipped: they need the catalog service and the embedded demo realm")
    result.seconds = time.perf_counter() - started
    console.print(f"[bold]seed done[/] in {result.seconds:.1f}s")
    return result


async def _sell(info: RunInfo, catalog: str, sample: Sample, console: Console) -> int:
    """Each sale as the demo's integrator (seller and buyer systems) over HTTP; ``curator.bekasi`` curates."""
    import httpx

    from kumkm_shared.cli.connect import connect
    from kumkm_shared.cli.demo import BUYER, CURATOR, INTEGRATOR, Actors, DemoError, record_demo_mandates
    from kumkm_shared.cli.signin import DemoRealm

    async with connect(info, name="kumkm-seed") as nc:  # the integrator's seller mandate names the sellers
        await record_demo_mandates(nc.jetstream())

    if not info.auth_issuer or not info.auth_realm:
        return 0
    realm = DemoRealm.read(Path(info.auth_realm))
    async with httpx.AsyncClient(timeout=30) as http:
        actors = Actors(info.auth_issuer, realm, http, console)

        async def command(name: str, path: str, body: dict[str, Any]) -> None:
            response = await actors.call(name, "POST", catalog, path, quiet=True, json=body)
            if response.is_error:
                raise DemoError(f"{name} POST {path}: {response.status_code} {response.text[:300]}")

        async def sell(sale: Sale) -> int:
            order = await actors.call(INTEGRATOR, "GET", catalog, f"/orders/{sale.order_id}", quiet=True)
            if order.status_code == httpx.codes.OK and order.json().get("status") == "paid":
                return 0  # sold by an earlier seed this month: counted below
            await command(INTEGRATOR, "/products", product_body(sale))
            curation = {
                "decision": "approved",
                "tier": "local",
                "notes": "Contoh data demo.",
                "checklist": [{"item": "documents_complete", "passed": True}],
            }
            await command(CURATOR, f"/products/{sale.product_id}/curation", curation)
            await command(INTEGRATOR, "/orders", order_body(sale, BUYER, sample.today))
            for step, body in order_steps(sale, sample.today):
                await command(INTEGRATOR, f"/orders/{sale.order_id}/{step}", body)
            return 1

        async def attempt(sale: Sale) -> int:
            try:
                return await sell(sale)
            except DemoError as exc:
                console.print(f"[yellow]seed: sale {sale.order_id} refused: {exc}[/]")
                return 0

        # Side by side: each sale is its own product and order.
        sold = sum(await asyncio.gather(*(attempt(sale) for sale in sample.sales)))
    console.print(
        f"seed: {len(sample.sales)} e-catalog sales in the sample; {sold} delivered and paid now "
        "(the others earlier this month, or refused as shown)"
    )
    return sold
