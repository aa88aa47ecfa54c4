"""Rebuild the read models from the streams: ``python -m kumkm_monitoring rebuild`` (``kumkm monitoring
rebuild``).

Stop the service first. The rebuild deletes the monitoring durables (nothing is delivered meanwhile), empties
every read model and the durables' inbox rows, and creates the durables again from their declarations
(``deliver_policy=all``: from each stream's start). The service, started again, reads every event once more
and the same figures come back (the rules depend on the events only, never on the day they are read).

The NATS connection needs the rights to delete and create consumers: an operator's or the provisioner's
credentials (``KUMKM_NATS_CREDS``), not the service's own.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import nats.js.errors

from kumkm_monitoring import repository as repo
from kumkm_monitoring.handlers import DURABLES
from kumkm_shared.messaging.topology import consumer as declared_consumer

if TYPE_CHECKING:
    from collections.abc import Sequence

    from nats.js import JetStreamContext

    from kumkm_monitoring.repository import Conn
    from kumkm_shared.messaging.topology import ConsumerDecl


@dataclass(frozen=True, slots=True)
class Rebuilt:
    durables: tuple[str, ...]
    tables: tuple[str, ...]


async def rebuild(conn: Conn, js: JetStreamContext, decls: Sequence[ConsumerDecl] | None = None) -> Rebuilt:
    """Delete the durables, empty the read models (one transaction), create the durables from the start."""
    decls = list(decls) if decls is not None else [declared_consumer(name) for name in DURABLES]
    for decl in decls:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_consumer(decl.stream, decl.name)
    async with conn.transaction():
        await repo.truncate_read_models(conn, [d.name for d in decls])
    for decl in decls:
        await js.add_consumer(decl.stream, config=decl.config())
    return Rebuilt(tuple(d.name for d in decls), repo.READ_MODELS)
