from tests.integration.notifications.conftest import nc, service, smtp, start, webhook

__all__ = ["nc", "service", "smtp", "start", "webhook"]
