"""What the mandate check costs per integrator event: the KV get of the sender's mandate.

    python bench/mandate_lookup.py [--orgs 1000] [--gets 5000]

Every owning handler calls ``ctx.require_mandate(party)``, which reads the sender's mandate from the
``KUMKM_MANDATES`` bucket once per event (no cache: a revocation applies to the very next event). This
measures that read against an embedded nats-server holding ``--orgs`` mandates (explicit party lists of 20,
one in ten ``*``), one at a time (the latency a handler waits for) and 64 in flight (what a consumer's batch
sees), and splits it into the round trip (the raw KV get, nats-py only: the baseline) and the decoding
(``Mandate.model_validate`` of the JSON value).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nats

from kumkm_shared.integrators import IntegratorRole
from kumkm_shared.mandates import ALL_PARTIES, BUCKET, Grant, Mandate, MandateBook
from kumkm_shared.servers import EmbeddedNats

IN_FLIGHT = 64


def mandate(i: int) -> Mandate:
    role = list(IntegratorRole)[i % len(IntegratorRole)]
    parties = (ALL_PARTIES,) if i % 10 == 0 else tuple(f"PARTY-{i:05d}-{k:02d}" for k in range(20))
    return Mandate(
        organisation=f"org-{i:05d}", grants=(Grant(role=role, parties=parties),), granted_by="bench"
    )


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def measure(url: str, orgs: int, gets: int) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    book = MandateBook(js)
    await book.ensure_bucket()
    for i in range(orgs):
        await book.put(mandate(i))
    kv = await js.key_value(BUCKET)
    rng = random.Random(7)
    keys = [f"org-{rng.randrange(orgs):05d}" for _ in range(gets)]
    for key in keys[:500]:  # warm-up
        await book.get(key)

    async def one_at_a_time(get: object) -> list[float]:
        out = []
        for key in keys:
            t = time.perf_counter()
            await get(key)  # type: ignore[operator]
            out.append((time.perf_counter() - t) * 1e6)
        return out

    async def in_flight(get: object) -> float:
        queue = list(keys)

        async def worker() -> None:
            while queue:
                await get(queue.pop())  # type: ignore[operator]

        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        return len(keys) / (time.perf_counter() - t)

    book_lat = await one_at_a_time(book.get)
    raw_lat = await one_at_a_time(kv.get)
    book_rate = await in_flight(book.get)
    raw_rate = await in_flight(kv.get)
    value = (await kv.get(keys[0])).value or b"{}"
    t = time.perf_counter()
    for _ in range(gets):
        Mandate.model_validate(json.loads(value))
    decode_us = (time.perf_counter() - t) / gets * 1e6
    await nc.drain()
    print(
        f"mandate lookup, {orgs} mandates, {gets} gets "
        f"({platform.machine()}, Python {platform.python_version()})"
    )
    print(
        f"  one at a time: MandateBook.get p50 {statistics.median(book_lat):.0f} us, "
        f"p99 {pct(book_lat, 99):.0f} us; raw KV get (baseline) p50 {statistics.median(raw_lat):.0f} us, "
        f"p99 {pct(raw_lat, 99):.0f} us; ratio {statistics.median(raw_lat) / statistics.median(book_lat):.2f}"
    )
    print(
        f"  {IN_FLIGHT} in flight: MandateBook.get {book_rate:,.0f}/s, "
        f"raw KV get (baseline) {raw_rate:,.0f}/s; "
        f"ratio {book_rate / raw_rate:.2f}"
    )
    print(f"  decoding one mandate (json + pydantic): {decode_us:.0f} us")
    print(
        f"  per integrator event: {1e6 / book_rate:.0f} us of the process's time at {IN_FLIGHT} in flight, "
        f"{statistics.median(book_lat):.0f} us added to the handler's latency"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/mandate_lookup.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--orgs", type=int, default=1000)
    parser.add_argument("--gets", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kumkm-mandates-") as tmp, EmbeddedNats(Path(tmp)) as server:
        asyncio.run(measure(server.url, args.orgs, args.gets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
