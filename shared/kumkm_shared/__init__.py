"""kumkm_shared: the small public API the services build on.

Contracts live in ``kumkm_shared.contracts``; everything a service needs to run is re-exported here.
"""

from kumkm_shared.backoff import Backoff
from kumkm_shared.clock import JAKARTA, Clock, FixedClock, SystemClock, business_date
from kumkm_shared.errors import Forbidden, NotFound, Refusal, Retry
from kumkm_shared.messaging.consumer import (
    Begin,
    CommandContext,
    Emit,
    EventContext,
    EventProcessor,
    Handler,
    Work,
)
from kumkm_shared.messaging.inbox import Inbox
from kumkm_shared.messaging.outbox import Outbox, OutboxRelay
from kumkm_shared.messaging.topology import ConsumerDecl, consumer, consumers_of
from kumkm_shared.origin import ANONYMOUS, SYSTEM, Actor, Command, Origin, StreamDelivery
from kumkm_shared.service.main import service_cli
from kumkm_shared.service.runtime import ServiceDefinition, ServiceRuntime
from kumkm_shared.service.settings import InfraSettings

__all__ = [
    "ANONYMOUS",
    "JAKARTA",
    "SYSTEM",
    "Actor",
    "Backoff",
    "Begin",
    "Clock",
    "Command",
    "CommandContext",
    "ConsumerDecl",
    "Emit",
    "EventContext",
    "EventProcessor",
    "FixedClock",
    "Forbidden",
    "Handler",
    "Inbox",
    "InfraSettings",
    "NotFound",
    "Origin",
    "Outbox",
    "OutboxRelay",
    "Refusal",
    "Retry",
    "ServiceDefinition",
    "ServiceRuntime",
    "StreamDelivery",
    "SystemClock",
    "Work",
    "business_date",
    "consumer",
    "consumers_of",
    "service_cli",
]
