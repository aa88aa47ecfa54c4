"""Email over SMTP (aiosmtplib): one message with a plain-text and an HTML part."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import TYPE_CHECKING

import aiosmtplib

from kumkm_notifications.domain.delivery import Outcome, smtp_reply

if TYPE_CHECKING:
    from kumkm_notifications.channels import OutgoingMessage
    from kumkm_notifications.settings import NotificationsSettings


def compose(message: OutgoingMessage, sender: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = formataddr((message.name, message.address))
    email["Subject"] = message.subject
    email["Date"] = formatdate(localtime=False)
    # Stable across attempts, so a mail system that saw an earlier attempt can recognise the repeat.
    email["Message-ID"] = f"<{message.id}@notifications.kumkm>"
    email["X-KUMKM-Delivery"] = str(message.id)
    email["X-KUMKM-Event-Type"] = message.event_type
    email.set_content(message.text)
    email.add_alternative(message.html, subtype="html")
    return email


class EmailSender:
    def __init__(self, settings: NotificationsSettings) -> None:
        self.settings = settings

    async def send(self, message: OutgoingMessage) -> Outcome:
        s = self.settings
        try:
            _, response = await aiosmtplib.send(
                compose(message, s.smtp_sender),
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                start_tls=s.smtp_starttls,
                timeout=s.smtp_timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refusal = exc.recipients[0]
            return smtp_reply(refusal.code, refusal.message)
        except aiosmtplib.SMTPResponseException as exc:
            return smtp_reply(exc.code, exc.message)
        except (aiosmtplib.SMTPTimeoutError, TimeoutError) as exc:
            return Outcome.transient("timeout", f"SMTP timeout: {exc}")
        except ConnectionRefusedError as exc:
            return Outcome.transient("connection_refused", f"SMTP {s.smtp_host}:{s.smtp_port}: {exc}")
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Outcome.transient("smtp_connection", f"{type(exc).__name__}: {exc}")
        return Outcome.delivered(f"250 {response}")  # the DATA reply; aiosmtplib drops its code

    async def close(self) -> None:
        return None
