"""The toy batch durable in a process of its own, so that a failpoint can kill it with SIGKILL.

    python -m tests.support.crash_toy NATS_URL DATABASE_URL AUTH_ISSUER

The crash-safety tests (``tests/integration/messaging/test_batch_crash.py``) start it with
``KUMKM_FAILPOINTS`` set; it dies at that point of its first batch, as a power cut would: no cleanup, no
flush. Each disbursement it applies writes an effect row and emits one follow-up event through the outbox,
so that a double effect shows in the table and a double publication on the stream.
"""

from __future__ import annotations

import asyncio
import sys

from kumkm_shared import ServiceRuntime
from kumkm_shared.servers import free_port
from kumkm_shared.service.settings import InfraSettings
from tests.support.toy import Toy, toy_service

READY = "crash-toy ready"


async def serve(nats_url: str, database_url: str, auth_issuer: str) -> None:
    toy = Toy()
    toy.announces = True
    settings = InfraSettings(
        nats_url=nats_url,
        database_url=database_url,
        http_port=free_port(),
        auth_issuer=auth_issuer,
        batch_size=100,
        batch_max_wait=0.2,
        drain_timeout=2.0,
    )
    runtime = ServiceRuntime(toy_service(toy, batch=True), settings)
    await runtime.start()
    print(READY, flush=True)  # noqa: T201 - the parent waits for this line
    try:
        await asyncio.Event().wait()  # until killed, by a failpoint or by the test
    finally:
        await runtime.stop()


if __name__ == "__main__":
    asyncio.run(serve(*sys.argv[1:4]))
