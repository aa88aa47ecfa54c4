"""Who may use the notifications service: each permission a route declares, and the roles that grant it.

Contacts hold personal data (email addresses, phone numbers): only operators read them, and each read is in
the audit trail. Integrators' systems read and mark their parties' inbox. ``docs/rules/access.md``.
"""

from __future__ import annotations

from typing import Final

from kumkm_shared.auth.roles import INTEGRATOR, OPERATOR

WRITE_CONTACT: Final = "contacts.write"
READ_CONTACTS: Final = "contacts.read"
ROTATE_SECRET: Final = "contacts.webhook_secret.rotate"  # noqa: S105 - a permission name
REROUTE: Final = "contacts.reroute"
READ_INBOX: Final = "inbox.read"
MARK_READ: Final = "inbox.mark_read"
READ_ACTIVITY: Final = "notifications.read"
RESEND: Final = "notifications.resend"

PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    WRITE_CONTACT: frozenset({OPERATOR, INTEGRATOR}),
    READ_CONTACTS: frozenset({OPERATOR}),
    ROTATE_SECRET: frozenset({OPERATOR}),
    REROUTE: frozenset({OPERATOR}),
    READ_INBOX: frozenset({OPERATOR, INTEGRATOR}),
    MARK_READ: frozenset({OPERATOR, INTEGRATOR}),
    READ_ACTIVITY: frozenset({OPERATOR}),
    RESEND: frozenset({OPERATOR}),
}
