"""``EventContext.require_mandate``: who is held to a mandate, and every reason it refuses (pure: a fake
mandate lookup, no connection is touched)."""

from __future__ import annotations

from typing import Any

import pytest

from kumkm_shared.auth.roles import INTEGRATOR, LOANS_OFFICER
from kumkm_shared.contracts import validate_event_payload
from kumkm_shared.errors import Forbidden
from kumkm_shared.integrators import IntegratorRole, split_subject
from kumkm_shared.mandates import ALL_PARTIES, Grant, Mandate
from kumkm_shared.messaging.consumer import EventContext
from kumkm_shared.origin import Actor, Command, StreamDelivery
from tests.support.events import contract_event

pytestmark = pytest.mark.unit

SUBMITTED = "kumkm.catalog.product.submitted.v1"


class Book:
    def __init__(self, *mandates: Mandate) -> None:
        self.mandates = {m.organisation: m for m in mandates}

    async def get(self, organisation: str, /) -> Mandate | None:
        return self.mandates.get(organisation)


SELLER = Mandate(
    organisation="toko-a", grants=(Grant(role=IntegratorRole.SELLER, parties=("9120001234567",)),)
)
EVERYONE = Mandate(
    organisation="pasar-nasional", grants=(Grant(role=IntegratorRole.SELLER, parties=(ALL_PARTIES,)),)
)
BUYER = Mandate(organisation="disdik", grants=(Grant(role=IntegratorRole.BUYER, parties=("DISDIK",)),))
REVOKED = SELLER.model_copy(update={"organisation": "toko-lama", "status": "revoked"})


def _ctx(origin: Any) -> EventContext:
    event = validate_event_payload(contract_event(SUBMITTED))
    book = Book(SELLER, EVERYONE, BUYER, REVOKED)
    return EventContext(None, event, None, origin, "kumkm/catalog", mandates=book)  # type: ignore[arg-type]


def _bus(sender: str | None) -> StreamDelivery:
    return StreamDelivery(consumer="catalog", sender=sender)


def _http(kind: str, organisation: str | None, *roles: str) -> Command:
    return Command(Actor("someone", kind=kind, roles=frozenset(roles), organisation=organisation))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("origin", "party"),
    [
        (_bus("toko-a"), "9120001234567"),
        (_bus("pasar-nasional"), "9120009999999"),  # "*": every party of the role
        (_http("service", "toko-a", INTEGRATOR), "9120001234567"),
        (_http("person", "lpdb-kumkm", LOANS_OFFICER), "9120009999999"),  # people: roles and regions decide
        (_http("system", None), "9120009999999"),
    ],
)
async def test_allowed(origin: Any, party: str) -> None:
    await _ctx(origin).require_mandate(party)


@pytest.mark.parametrize(
    ("origin", "party", "reason"),
    [
        (_bus(None), "9120001234567", "names no sending organisation"),
        (_bus("toko-b"), "9120001234567", "holds no mandate"),
        (_bus("toko-lama"), "9120001234567", "was revoked"),
        (_bus("disdik"), "9120001234567", "plays buyer, which may not send " + SUBMITTED),
        (_bus("toko-a"), "9120009999999", "holds no mandate for party '9120009999999'"),
        (_http("service", None, INTEGRATOR), "9120001234567", "belongs to no organisation"),
        (_http("service", "toko-a", INTEGRATOR), "9120009999999", "holds no mandate for party"),
        # A person's token with the integrator role acts for its organisation, under its mandate.
        (_http("person", "toko-b", INTEGRATOR), "9120001234567", "holds no mandate"),
    ],
)
async def test_refused(origin: Any, party: str, reason: str) -> None:
    with pytest.raises(Forbidden) as refused:
        await _ctx(origin).require_mandate(party)
    assert refused.value.code == "not_authorised_for_party"
    assert refused.value.http_status == 403
    assert reason in refused.value.reason


async def test_an_unknown_party_checks_everything_but_the_party() -> None:
    await _ctx(_bus("toko-a")).require_mandate(None)
    with pytest.raises(Forbidden):
        await _ctx(_bus("disdik")).require_mandate(None)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        (SUBMITTED, (True, None)),
        (SUBMITTED + ".toko-a", (True, "toko-a")),
        (SUBMITTED + ".Toko-A", (False, None)),  # not an organisation id
        (SUBMITTED + ".toko-a.more", (False, None)),
        (SUBMITTED + ".*", (False, None)),
        ("kumkm.catalog.product.curated.v1", (False, None)),
    ],
)
def test_the_sender_token(subject: str, expected: tuple[bool, str | None]) -> None:
    assert split_subject(subject, SUBMITTED) == expected
