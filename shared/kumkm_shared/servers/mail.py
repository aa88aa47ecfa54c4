"""A local SMTP catcher for ``kumkm up`` (what mailpit is in docker-compose): every email is saved as
``.eml`` in a folder and announced, so the demo's emails are visible without any mail server."""

from __future__ import annotations

import email
import email.policy
import itertools
from typing import TYPE_CHECKING, Any

from kumkm_shared.servers._process import free_port

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


class _Handler:
    def __init__(self, folder: Path, announce: Callable[[str], None]) -> None:
        self.folder = folder
        self.announce = announce
        self.counter = itertools.count(1)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
        raw: bytes = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        n = next(self.counter)
        (self.folder / f"{n:06d}.eml").write_bytes(raw)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        self.announce(f"✉  to {', '.join(envelope.rcpt_tos)}: {message['subject']}")
        return "250 Message accepted for delivery"


class MailSink:
    def __init__(self, folder: Path, announce: Callable[[str], None], port: int | None = None) -> None:
        from aiosmtpd.controller import Controller

        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port = port or free_port()
        self._controller = Controller(_Handler(folder, announce), hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
