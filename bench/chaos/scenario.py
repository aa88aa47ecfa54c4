"""The scripted mixed workload: parties, loan flows and catalog flows, recorded in the ledger."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from bench.chaos.orgs import Organisations
from bench.chaos.signin import CURATOR, OFFICER, SECOND_SUPERVISOR, SUPERVISOR
from bench.chaos.workload import (
    OFFICERS,
    Api,
    ExpectedAudit,
    ExpectedNotification,
    ExpectedOutcome,
    Integrator,
    Ledger,
    buyer_id,
    contact,
    cooperative_number,
    disbursement,
    lifecycle,
    nib,
    order,
    product,
    repayment,
    restructuring,
)

if TYPE_CHECKING:
    from bench.chaos.orgs import Org
    from kumkm_shared.contracts import EventData

LOANS = "kumkm.loans."
APPROVED = "kumkm.loans.restructuring.approved.v1"
REJECTED = "kumkm.loans.restructuring.rejected.v1"
REFERRED = "kumkm.loans.restructuring.referred.v1"
CURATED = "kumkm.catalog.product.curated.v1"
ACCEPTED = "kumkm.catalog.order.accepted.v1"
ORDER_REJECTED = "kumkm.catalog.order.rejected.v1"
STATUS_CHANGED = "kumkm.catalog.order.status_changed.v1"
PRODUCT_STOCK = 100
ORDER_QTY = 4
SMALL_PRINCIPAL = "500000000.00"  # at most the second-approval threshold: one officer decides
LARGE_PRINCIPAL = "1500000000.00"  # above it: a first approval waits for a second person (maker-checker)
DECIDED_ON = "2020-04-20"
# (maker, checker) of each kind of decision flow: an officer alone; an officer then a supervisor; two
# different supervisors.
DECIDERS: tuple[tuple[str, str | None], ...] = (
    (OFFICER, None),
    (OFFICER, SUPERVISOR),
    (SUPERVISOR, SECOND_SUPERVISOR),
)


class FlowError(RuntimeError):
    pass


@dataclass
class Parties:
    coops: list[str]
    sellers: list[str]
    buyers: list[str]


class Scenario:
    """Flows as integrators, sellers, buyers and curators would run them, with their expected effects."""

    def __init__(
        self, integrator: Integrator, api: Api, ledger: Ledger, hook_url: str, *, tag: str = "C"
    ) -> None:
        self.integrator = integrator
        self.api = api
        self.ledger = ledger
        self.hook_url = hook_url
        self.tag = tag
        self.parties = Parties([], [], [])
        self.orgs: Organisations | None = None  # who sends what: set with the parties

    # -- helpers ------------------------------------------------------------------------------------
    def expect_on_channels(
        self,
        party: str,
        *,
        event_id: str | None = None,
        outcome: tuple[str, str, str] | None = None,
    ) -> None:
        for channel in ("email", "webhook", "inbox"):
            if outcome is None:
                self.ledger.notifications.append(
                    ExpectedNotification(party, channel, cause_event_id=event_id)
                )
            else:
                event_type, key, value = outcome
                self.ledger.notifications.append(
                    ExpectedNotification(party, channel, cause_type=event_type, cause_key=(key, value))
                )

    async def publish(self, data: EventData, sender: Org) -> str:
        return (await self.integrator.publish(data, sender)).event_id

    @property
    def senders(self) -> Organisations:
        if self.orgs is None:
            raise RuntimeError("no parties yet: setup_parties first")
        return self.orgs

    async def wait_state(
        self,
        service: str,
        path: str,
        field: str,
        wanted: set[str],
        *,
        timeout: float = 240.0,  # noqa: ASYNC109 - a polling deadline, not a cancellation scope
    ) -> str:
        start = time.monotonic()
        last = "?"
        while time.monotonic() - start < timeout:
            response = await self.api.get(service, path, deadline=timeout)
            if response is not None and response.status_code == 200:
                last = str(response.json().get(field))
                if last in wanted:
                    return last
            await asyncio.sleep(0.25)
        raise FlowError(f"{service}{path}: {field} is {last!r}, waited for {sorted(wanted)} for {timeout}s")

    # -- parties ------------------------------------------------------------------------------------
    async def setup_parties(self, n_coops: int, n_sellers: int, n_buyers: int, *, offset: int = 0) -> None:
        p = self.parties
        p.coops = [cooperative_number(offset + i + 1) for i in range(n_coops)]
        p.sellers = [nib(offset + i + 1) for i in range(n_sellers)]
        p.buyers = [buyer_id(offset + i + 1) for i in range(n_buyers)]
        upserts = [contact(OFFICERS, "officer", "Petugas LPDB", self.hook_url)]
        upserts += [contact(c, "cooperative", f"Koperasi {c[-5:]}", self.hook_url) for c in p.coops]
        upserts += [contact(s, "umkm", f"CV Mebel {s[-5:]}", self.hook_url) for s in p.sellers]
        upserts += [contact(b, "buyer", "Dinas Pendidikan", self.hook_url) for b in p.buyers]
        # Each organisation's mandate lists exactly the parties this workload uses.
        self.orgs = Organisations.for_parties(
            coops=p.coops,
            sellers=p.sellers,
            buyers=p.buyers,
            contacts=[u.party_id for u in upserts],
            tag=self.tag.lower(),
        )
        if self.integrator.js is None:
            raise RuntimeError("not connected")
        await self.orgs.record(self.integrator.js)
        registry = self.orgs.registry
        await asyncio.gather(*(self.publish(u, registry) for u in upserts))
        for u in upserts:
            self.ledger.contacts.add(u.party_id)
        for u in upserts:
            await self.wait_state("notifications", f"/contacts/{u.party_id}", "party_id", {u.party_id})

    # -- flows --------------------------------------------------------------------------------------
    async def loan_flow(self, i: int) -> None:
        """Disbursement, two repayments and a COVID-19 restructuring request (auto-approved)."""
        borrower = self.parties.coops[i % len(self.parties.coops)]
        loan_id = f"LN-{self.tag}-{i:05d}"
        request_id = f"RR-{self.tag}-{i:05d}"
        payments = [f"PAY-{self.tag}-{i:05d}-{k}" for k in (1, 2)]
        self.ledger.loans[loan_id] = payments
        orgs = self.senders
        await self.publish(disbursement(loan_id, borrower), orgs.lender)
        # the lender reports one repayment, the payment channel collecting for it the other
        await self.publish(repayment(payments[0], loan_id, date(2020, 3, 1)), orgs.lender)
        await self.publish(repayment(payments[1], loan_id, date(2020, 4, 1)), orgs.channel)
        requested = await self.publish(restructuring(request_id, loan_id), orgs.cooperative(borrower))
        self.ledger.outcomes.append(ExpectedOutcome((APPROVED, REJECTED, REFERRED), "request_id", request_id))
        self.expect_on_channels(borrower, event_id=requested)
        self.expect_on_channels(borrower, outcome=(APPROVED, "request_id", request_id))

    async def decision_flow(self, k: int) -> None:
        """A request the policy refers (not a COVID-19 reason), approved over HTTP by the people signed in:
        one officer for a small loan; above the second-approval threshold a maker and then a different
        checker (an officer then a supervisor, or two supervisors)."""
        borrower = self.parties.coops[k % len(self.parties.coops)]
        maker, checker = DECIDERS[k % len(DECIDERS)]
        loan_id = f"LN-{self.tag}-D-{k:05d}"
        request_id = f"RR-{self.tag}-D-{k:05d}"
        self.ledger.loans[loan_id] = []
        orgs = self.senders
        await self.publish(
            disbursement(loan_id, borrower, SMALL_PRINCIPAL if checker is None else LARGE_PRINCIPAL),
            orgs.lender,
        )
        requested = await self.publish(
            restructuring(request_id, loan_id, reason="other"), orgs.cooperative(borrower)
        )
        self.ledger.outcomes.append(ExpectedOutcome((REFERRED,), "request_id", request_id))
        self.ledger.outcomes.append(ExpectedOutcome((APPROVED,), "request_id", request_id))
        self.expect_on_channels(borrower, event_id=requested)
        self.expect_on_channels(OFFICERS, outcome=(REFERRED, "request_id", request_id))
        self.expect_on_channels(borrower, outcome=(APPROVED, "request_id", request_id))
        path = f"/restructurings/{request_id}"
        await self.wait_state("loans", path, "status", {"referred"})
        first = "approved" if checker is None else "awaiting_second_approval"
        await self.decide(request_id, maker, {"referred"}, first)
        if checker is not None:
            await self.decide(request_id, checker, {first}, "approved")
        self.ledger.decisions[request_id] = "approved"

    async def decide(self, request_id: str, who: str, before: set[str], after: str) -> None:
        """`who` approves; an answer lost to a fault is settled by the request's state (a retry after the
        decision took effect is refused: 409 for a decided request, 403 for the maker as checker)."""
        path = f"/restructurings/{request_id}"
        response = await self.api.command(
            "loans",
            "POST",
            f"{path}/decision",
            {"decision": "approve", "reason": "Dampak usaha terverifikasi.", "decided_on": DECIDED_ON},
            label=f"decide:{request_id}:{who}",
            who=who,
        )
        if response.status_code != 200 and response.status_code not in {403, 409}:
            raise FlowError(f"{who} deciding {request_id}: HTTP {response.status_code} {response.text[:300]}")
        state = await self.wait_state("loans", path, "status", {after, *before})
        if state != after:
            raise FlowError(
                f"{who} deciding {request_id}: HTTP {response.status_code}, the request is {state}"
            )
        self.ledger.audits.append(ExpectedAudit("loans", f"{path}/decision", who))

    async def catalog_flow(self, j: int) -> None:
        """Submit, curate over HTTP as a curator, order, then confirm, ship, deliver and pay, each after the
        last."""
        seller_nib = self.parties.sellers[j % len(self.parties.sellers)]
        buyer = self.parties.buyers[j % len(self.parties.buyers)]
        product_id = f"PRD-{self.tag}-{j:05d}"
        order_id = f"ORD-{self.tag}-{j:05d}"
        self.ledger.products[product_id] = seller_nib
        orgs = self.senders
        await self.publish(product(product_id, seller_nib, PRODUCT_STOCK), orgs.seller(seller_nib))
        await self.wait_state("catalog", f"/products/{product_id}", "status", {"pending_curation", "listed"})
        self.ledger.outcomes.append(ExpectedOutcome((CURATED,), "product_id", product_id))
        self.expect_on_channels(seller_nib, outcome=(CURATED, "product_id", product_id))
        response = await self.api.command(
            "catalog",
            "POST",
            f"/products/{product_id}/curation",
            {"decision": "approved", "tier": "local", "notes": "Lengkap."},
            label=f"curate:{product_id}",
            who=CURATOR,
        )
        if response.status_code not in {200, 201, 409}:
            raise FlowError(f"curation of {product_id}: HTTP {response.status_code} {response.text[:300]}")
        await self.wait_state("catalog", f"/products/{product_id}", "status", {"listed"})
        self.ledger.audits.append(ExpectedAudit("catalog", f"/products/{product_id}/curation", CURATOR))
        self.ledger.orders[order_id] = (product_id, ORDER_QTY, PRODUCT_STOCK)
        await self.publish(order(order_id, buyer, product_id, ORDER_QTY), orgs.buyer(buyer))
        self.ledger.outcomes.append(ExpectedOutcome((ACCEPTED, ORDER_REJECTED), "order_id", order_id))
        self.expect_on_channels(seller_nib, outcome=(ACCEPTED, "order_id", order_id))
        await self.wait_state("catalog", f"/orders/{order_id}", "status", {"accepted", "rejected"})
        for step, state in (
            ("confirm", "confirmed"),
            ("ship", "shipped"),
            ("deliver", "delivered"),
            ("pay", "paid"),
        ):
            # the seller's marketplace confirms and ships, the buyer's system reports delivery and payment
            sender = orgs.seller(seller_nib) if step in {"confirm", "ship"} else orgs.buyer(buyer)
            event_id = await self.publish(lifecycle(step, order_id, buyer, seller_nib), sender)
            # Each applied step is recorded once by the catalog; from that record the buyer hears of the
            # confirmation and the shipment, the seller of the handover and the payment.
            recorded = (STATUS_CHANGED, "applied_event_id", event_id)
            self.ledger.outcomes.append(ExpectedOutcome((STATUS_CHANGED,), "applied_event_id", event_id))
            self.expect_on_channels(seller_nib if step in {"deliver", "pay"} else buyer, outcome=recorded)
            await self.wait_state("catalog", f"/orders/{order_id}", "status", {state})

    async def rejected_order(self, k: int) -> tuple[str, str, str]:
        """An order for a product that is not listed: rejected, and then a target for illegal transitions."""
        buyer = self.parties.buyers[k % len(self.parties.buyers)]
        seller_nib = self.parties.sellers[k % len(self.parties.sellers)]
        order_id = f"ORD-{self.tag}-REJ-{k:04d}"
        await self.publish(
            order(order_id, buyer, f"PRD-{self.tag}-UNLISTED-{k}", ORDER_QTY), self.senders.buyer(buyer)
        )
        self.ledger.outcomes.append(ExpectedOutcome((ORDER_REJECTED,), "order_id", order_id))
        self.expect_on_channels(buyer, outcome=(ORDER_REJECTED, "order_id", order_id))
        await self.wait_state("catalog", f"/orders/{order_id}", "status", {"rejected"})
        return order_id, buyer, seller_nib

    async def target_loans(self, k: int) -> list[tuple[str, str]]:
        """Loans on the book, disbursed by the lender, that impersonation attempts aim at: (loan id,
        borrower). A valid disbursement each, in the ledger; the loan must end with no repayment and no
        restructuring."""
        loans = []
        for i in range(k):
            borrower = self.parties.coops[i % len(self.parties.coops)]
            loan_id = f"LN-{self.tag}-T-{i:03d}"
            self.ledger.loans[loan_id] = []
            await self.publish(disbursement(loan_id, borrower), self.senders.lender)
            loans.append((loan_id, borrower))
        for loan_id, _ in loans:
            await self.wait_state("loans", f"/loans/{loan_id}", "loan_id", {loan_id})
        return loans

    async def run_flow(self, kind: str, n: int) -> None:
        try:
            if kind == "loan":
                await self.loan_flow(n)
            elif kind == "decision":
                await self.decision_flow(n)
            else:
                await self.catalog_flow(n)
            self.ledger.flows_done += 1
        except Exception as exc:  # a flow that cannot finish is reported, the run goes on
            self.ledger.flows_failed.append(f"{kind} {n}: {type(exc).__name__}: {exc}")
