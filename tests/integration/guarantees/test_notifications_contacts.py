"""The consumer guarantees for the ``notifications-contacts`` durable (the contact directory)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

from kumkm_notifications.app import build
from kumkm_notifications.settings import NotificationsSettings
from kumkm_shared.testing.guarantees import ConsumerGuarantees, NotApplicable
from tests.support.events import contract_event

if TYPE_CHECKING:
    from kumkm_shared import ServiceDefinition
    from kumkm_shared.testing.guarantees import Sample
    from kumkm_shared.testing.harness import ServiceHarness

pytestmark = pytest.mark.integration

UPSERTED = "kumkm.notifications.contact.upserted.v1"


def _contact(**overrides: Any) -> dict[str, Any]:
    return contract_event(UPSERTED, party_id=f"PARTY-{uuid.uuid4().hex[:10]}", **overrides)


class TestNotificationsContactsGuarantees(ConsumerGuarantees):
    durable = "notifications-contacts"
    refusal = NotApplicable(
        "a contact update is always stored, unless a newer version of the contact is already stored, "
        "in which case it is ignored: the contact directory refuses nothing"
    )
    retry = NotApplicable(
        "a contact update depends on no other event (it carries the whole contact), so it never waits: "
        "nothing answers Retry"
    )

    def definition(self) -> ServiceDefinition:
        return build(settings=NotificationsSettings())

    async def valid(self, _harness: ServiceHarness) -> Sample:
        return _contact()

    def poison(self) -> dict[str, Any]:
        return _contact(channels=["carrier_pigeon"])

    async def effects(self, harness: ServiceHarness, event: dict[str, Any]) -> int:
        """The contact stored from this very event (the row names the event it came from)."""
        count: int = await harness.runtime.pool.fetchval(
            "SELECT count(*) FROM notifications.contacts WHERE party_id = $1 AND event_id = $2::uuid",
            event["data"]["party_id"],
            event["id"],
        )
        return count
