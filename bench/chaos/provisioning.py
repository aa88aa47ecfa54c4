"""Provision the streams and durables of the fault suite's services, as a module a service's interpreter runs.

    python -m bench.chaos.provisioning NATS_URL [ACK_WAIT] [MAX_DELIVER]

The cluster runs this in a subprocess when its services run another tree's code
(``ClusterConfig.pythonpath``): the streams and durables are then those of that tree's topology, not the
harness's. It imports only ``kumkm_shared`` (whichever is first on the path) and nats-py.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace

import nats

from kumkm_shared.messaging.provision import provision
from kumkm_shared.messaging.topology import CONSUMER_DECLS

SERVICES = ("loans", "catalog", "notifications")


async def provision_services(nats_url: str, ack_wait: float | None, max_deliver: int | None) -> None:
    decls = [
        replace(
            d,
            ack_wait_seconds=ack_wait or d.ack_wait_seconds,
            max_deliver=max_deliver or d.max_deliver,
        )
        for d in CONSUMER_DECLS
        if d.service in SERVICES
    ]
    nc = await nats.connect(nats_url.split(","), max_reconnect_attempts=3)
    try:
        await provision(nc.jetstream(), consumers=decls)
    finally:
        await nc.drain()


def main(argv: list[str]) -> int:
    nats_url = argv[0]
    ack_wait = float(argv[1]) if len(argv) > 1 and argv[1] else None
    max_deliver = int(argv[2]) if len(argv) > 2 and argv[2] else None
    asyncio.run(provision_services(nats_url, ack_wait, max_deliver))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
