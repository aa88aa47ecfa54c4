"""SMS and WhatsApp through one configurable HTTP gateway (any provider behind a small adapter).

The gateway receives ``POST {gateway_url}`` with JSON ``{"channel", "to", "text", "reference"}`` and an
``Idempotency-Key`` header; 2xx means accepted. Its answers are classified like a webhook's.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from kumkm_notifications.channels.webhook import HttpSender, post
from kumkm_notifications.domain.delivery import Outcome

if TYPE_CHECKING:
    from kumkm_notifications.channels import OutgoingMessage
    from kumkm_notifications.settings import NotificationsSettings

SMS_LIMIT = 480  # three concatenated SMS segments


class GatewaySender(HttpSender):
    def __init__(self, settings: NotificationsSettings) -> None:
        super().__init__()
        self.settings = settings

    async def send(self, message: OutgoingMessage) -> Outcome:
        url = self.settings.gateway_url
        if not url:
            return Outcome.permanent("gateway_not_configured", "KUMKM_NOTIFICATIONS_GATEWAY_URL is not set")
        body = json.dumps(
            {
                "channel": message.channel.value,
                "to": message.address,
                "text": message.subject[:SMS_LIMIT],
                "reference": str(message.id),
            }
        ).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": str(message.id)}
        if self.settings.gateway_token is not None:
            headers["Authorization"] = f"Bearer {self.settings.gateway_token.get_secret_value()}"
        return await post(self.client, url, body, headers, self.settings.webhook_timeout)
