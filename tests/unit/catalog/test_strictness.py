"""The one strict-vs-tolerant rule: a command is refused at once; a stream delivery is ignored, parked or
refused, by the state machine's verdict."""

from __future__ import annotations

from typing import Any

import pytest

from kumkm_catalog.domain.orders import Verdict
from kumkm_catalog.handlers.strictness import HANDLING, Handling, announces_refusals, handling
from kumkm_shared import ANONYMOUS, Command, EventContext, StreamDelivery

pytestmark = pytest.mark.unit


def ctx(origin: Any) -> EventContext:
    return EventContext(conn=None, event=None, outbox=None, origin=origin, service_source="kumkm/catalog")  # type: ignore[arg-type]


COMMAND = ctx(Command(ANONYMOUS, via="http"))
DELIVERY = ctx(StreamDelivery(consumer="catalog", stream="KUMKM_CATALOG", stream_seq=7))


def test_every_misfit_has_a_rule() -> None:
    assert set(HANDLING) == set(Verdict) - {Verdict.APPLY}


@pytest.mark.parametrize("verdict", sorted(set(Verdict) - {Verdict.APPLY}))
def test_a_command_is_refused_whatever_the_misfit(verdict: Verdict) -> None:
    assert handling(verdict, COMMAND) is Handling.REFUSE


def test_a_stream_delivery_is_tolerated_unless_it_can_never_apply() -> None:
    assert handling(Verdict.STALE, DELIVERY) is Handling.IGNORE
    assert handling(Verdict.AHEAD, DELIVERY) is Handling.PARK
    assert handling(Verdict.ILLEGAL, DELIVERY) is Handling.REFUSE


def test_only_refusals_from_the_stream_are_announced() -> None:
    assert announces_refusals(DELIVERY)
    assert not announces_refusals(COMMAND)
