"""Email over SMTP (aiosmtplib): one message with a plain-text and an HTML part.

The message is rendered straight to bytes (headers as strings, bodies quoted-printable in UTF-8): building
an ``email.message.EmailMessage`` with the default policy parses every header it is given and then
flattens the tree again, which cost more than the SMTP conversation itself.

Connections are kept open between emails (``KUMKM_NOTIFICATIONS_SMTP_KEEP_OPEN`` idle ones at most): a
send takes an idle connection or opens a new one, so a send never waits for another. An idle connection
that the server dropped fails at ``MAIL FROM``, before anything of the message was sent, and the send
then starts again once on a fresh connection; any other failure discards the connection.
"""

from __future__ import annotations

import binascii
import time
from email.header import Header
from email.utils import formataddr, formatdate, parseaddr
from typing import TYPE_CHECKING

import aiosmtplib

from kumkm_notifications.domain.delivery import Outcome, smtp_reply

if TYPE_CHECKING:
    from kumkm_notifications.channels import OutgoingMessage
    from kumkm_notifications.settings import NotificationsSettings

IDLE_SECONDS = 30.0  # an idle connection older than this is closed rather than reused


def _header(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError(f"a header value may not contain a line break: {value!r}")
    return value


def _unstructured(value: str) -> str:
    """A Subject-like header: RFC 2047 encoded when not ASCII, folded when long."""
    _header(value)
    if value.isascii() and len(value) <= 900:  # noqa: PLR2004 - well inside the 998-octet line limit
        return value
    return Header(value, "utf-8" if not value.isascii() else "us-ascii").encode(linesep="\r\n")


def _qp(text: str) -> bytes:
    return binascii.b2a_qp(text.encode("utf-8"), istext=True)


def compose(message: OutgoingMessage, sender: str) -> bytes:
    """The whole message as it goes on the wire (aiosmtplib turns bare LF into CRLF and dot-stuffs)."""
    boundary = f"=_kumkm_{message.id.hex}"  # '=' never occurs in a quoted-printable body
    headers = (
        f"From: {_header(sender)}\n"
        f"To: {_header(formataddr((message.name, message.address)))}\n"
        f"Subject: {_unstructured(message.subject)}\n"
        f"Date: {formatdate(localtime=False)}\n"
        # Stable across attempts, so a mail system that saw an earlier attempt can recognise the repeat.
        f"Message-ID: <{message.id}@notifications.kumkm>\n"
        f"X-KUMKM-Delivery: {message.id}\n"
        f"X-KUMKM-Event-Type: {_header(message.event_type)}\n"
        "MIME-Version: 1.0\n"
        f'Content-Type: multipart/alternative; boundary="{boundary}"\n'
        "\n"
    )
    part = 'Content-Type: text/{}; charset="utf-8"\nContent-Transfer-Encoding: quoted-printable\n\n'
    return b"".join(
        (
            headers.encode("ascii"),
            f"--{boundary}\n{part.format('plain')}".encode(),
            _qp(message.text),
            f"\n--{boundary}\n{part.format('html')}".encode(),
            _qp(message.html),
            f"\n--{boundary}--\n".encode(),
        )
    )


class _Connection:
    __slots__ = ("client", "idle_since", "used")

    def __init__(self, client: aiosmtplib.SMTP) -> None:
        self.client = client
        self.used = False  # has carried a message before: the server may have dropped it since
        self.idle_since = time.monotonic()


class EmailSender:
    def __init__(self, settings: NotificationsSettings) -> None:
        self.settings = settings
        self.envelope_sender = parseaddr(settings.smtp_sender)[1] or settings.smtp_sender
        self._idle: list[_Connection] = []

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            start_tls=s.smtp_starttls,
            timeout=s.smtp_timeout,
        )

    async def _acquire(self) -> _Connection:
        while self._idle:
            conn = self._idle.pop()
            if conn.client.is_connected and time.monotonic() - conn.idle_since < IDLE_SECONDS:
                return conn
            conn.client.close()
        conn = _Connection(self._client())
        await conn.client.connect()
        return conn

    def _release(self, conn: _Connection) -> None:
        if conn.client.is_connected and len(self._idle) < self.settings.smtp_keep_open:
            conn.used = True
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.client.close()

    async def send(self, message: OutgoingMessage) -> Outcome:
        s = self.settings
        try:
            raw = compose(message, s.smtp_sender)
        except ValueError as exc:
            return Outcome.permanent("invalid_message", str(exc))
        try:
            response = await self._send(raw, message.address)
        except aiosmtplib.SMTPResponseException as exc:  # a refused sender, recipient or message
            return smtp_reply(exc.code, exc.message)
        except (aiosmtplib.SMTPTimeoutError, TimeoutError) as exc:
            return Outcome.transient("timeout", f"SMTP timeout: {exc}")
        except ConnectionRefusedError as exc:
            return Outcome.transient("connection_refused", f"SMTP {s.smtp_host}:{s.smtp_port}: {exc}")
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Outcome.transient("smtp_connection", f"{type(exc).__name__}: {exc}")
        return Outcome.delivered(f"250 {response}")  # the DATA reply; aiosmtplib drops its code

    async def _send(self, raw: bytes, recipient: str) -> str:
        utf8 = not (recipient.isascii() and self.envelope_sender.isascii())
        options, encoding = (["SMTPUTF8"], "utf-8") if utf8 else ([], "ascii")
        conn = await self._acquire()
        try:
            try:
                await conn.client.mail(self.envelope_sender, options=options, encoding=encoding)
            except aiosmtplib.SMTPServerDisconnected:
                if not conn.used:
                    raise
                # A kept connection the server had closed: nothing of this message was sent yet.
                conn.client.close()
                conn = _Connection(self._client())
                await conn.client.connect()
                await conn.client.mail(self.envelope_sender, options=options, encoding=encoding)
            await conn.client.rcpt(recipient, options=options, encoding=encoding)
            response = await conn.client.data(raw)
        except BaseException:
            # Whatever state the conversation is in (a refusal, a timeout, a cancellation), it is not
            # reused: a fresh connection is cheaper than reasoning about it.
            conn.client.close()
            raise
        self._release(conn)
        return response.message

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            try:
                await conn.client.quit()
            except (aiosmtplib.SMTPException, OSError):
                conn.client.close()
