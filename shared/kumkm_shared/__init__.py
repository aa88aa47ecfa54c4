"""kumkm_shared: the small public API the services build on.

Contracts live in ``kumkm_shared.contracts``; everything a service needs to run is re-exported here.
"""

from kumkm_shared.messaging.consumer import Backoff, EventContext, EventProcessor, Handler
from kumkm_shared.messaging.errors import Refused, Retry
from kumkm_shared.messaging.inbox import Inbox
from kumkm_shared.messaging.outbox import Outbox, OutboxRelay
from kumkm_shared.messaging.topology import ConsumerDecl, consumer, consumers_of
from kumkm_shared.service.http import Conflict, NotFound
from kumkm_shared.service.main import service_cli
from kumkm_shared.service.runtime import ServiceDefinition, ServiceRuntime
from kumkm_shared.service.settings import InfraSettings

__all__ = [
    "Backoff",
    "Conflict",
    "ConsumerDecl",
    "EventContext",
    "EventProcessor",
    "Handler",
    "Inbox",
    "InfraSettings",
    "NotFound",
    "Outbox",
    "OutboxRelay",
    "Refused",
    "Retry",
    "ServiceDefinition",
    "ServiceRuntime",
    "consumer",
    "consumers_of",
    "service_cli",
]
