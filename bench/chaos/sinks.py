"""Where notifications land: an SMTP sink (aiosmtpd) and a webhook sink (a small asyncio HTTP server).

Both record every receipt with its arrival time, keyed by the delivery id the notifications service puts in
``X-KUMKM-Delivery`` (email) and ``Idempotency-Key`` (webhook). The webhook sink de-duplicates on the
key the way the service's contract asks receivers to, and still counts the raw receipts.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

from aiosmtpd.controller import Controller

from kumkm_shared.servers import free_port


@dataclass
class Receipts:
    """Thread-safe: the SMTP sink writes from its own thread."""

    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    unmarked: int = 0  # receipts without a delivery id: always unexpected

    def add(self, key: str | None, headers: dict[str, str]) -> None:
        now = time.time()
        with self._lock:
            if not key:
                self.unmarked += 1
                return
            self.times[key].append(now)
            self.headers.setdefault(key, headers)

    def count(self, key: str) -> int:
        with self._lock:
            return len(self.times.get(key, ()))

    def first(self, key: str) -> float | None:
        with self._lock:
            got = self.times.get(key)
            return got[0] if got else None

    def snapshot(self) -> dict[str, list[float]]:
        with self._lock:
            return {k: list(v) for k, v in self.times.items()}

    def total(self) -> int:
        with self._lock:
            return sum(len(v) for v in self.times.values()) + self.unmarked

    def clear(self) -> None:
        with self._lock:
            self.times.clear()
            self.headers.clear()
            self.unmarked = 0


_HEADERS = BytesHeaderParser(policy=compat32)


class _SmtpHandler:
    def __init__(self, receipts: Receipts) -> None:
        self.receipts = receipts

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd
        raw = envelope.original_content or envelope.content
        # Headers only, without the default policy's parsing of each one: the sink shares the machine
        # with the system under test, and only needs the delivery id, the recipient and the event type.
        msg = _HEADERS.parsebytes(raw if isinstance(raw, bytes) else raw.encode())
        key = msg.get("X-KUMKM-Delivery")
        self.receipts.add(
            str(key) if key else None,
            {"to": str(msg.get("To", "")), "event_type": str(msg.get("X-KUMKM-Event-Type", ""))},
        )
        return "250 Message accepted for delivery"


class SmtpSink:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.receipts = Receipts()
        self._controller = Controller(
            _SmtpHandler(self.receipts), hostname="127.0.0.1", port=self.port, ready_timeout=10
        )

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._controller.stop()


class WebhookSink:
    """HTTP/1.1 keep-alive server that answers 200 to every POST and records it by Idempotency-Key."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.receipts = Receipts()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0"))
                if length:
                    await reader.readexactly(length)
                self.receipts.add(
                    headers.get("idempotency-key"), {"event_type": headers.get("x-kumkm-event-type", "")}
                )
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
