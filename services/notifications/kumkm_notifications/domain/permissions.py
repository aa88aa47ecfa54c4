"""Who may use the notifications service: each permission a route declares, and the roles that grant it.

Contacts hold personal data (email addresses, phone numbers): only operators read them, and each read is in
the audit trail. Until an integrator's mandate names the parties it acts for, integrators write no contact and
read no inbox: any of them could otherwise take over another party's webhook or read its messages.
``docs/rules/access.md``.
"""

from __future__ import annotations

from typing import Final

from kumkm_shared.auth.roles import OPERATOR

WRITE_CONTACT: Final = "contacts.write"
READ_CONTACTS: Final = "contacts.read"
ROTATE_SECRET: Final = "contacts.webhook_secret.rotate"  # noqa: S105 - a permission name
REROUTE: Final = "contacts.reroute"
READ_INBOX: Final = "inbox.read"
MARK_READ: Final = "inbox.mark_read"
READ_ACTIVITY: Final = "notifications.read"
RESEND: Final = "notifications.resend"

PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    WRITE_CONTACT: frozenset({OPERATOR}),
    READ_CONTACTS: frozenset({OPERATOR}),
    ROTATE_SECRET: frozenset({OPERATOR}),
    REROUTE: frozenset({OPERATOR}),
    READ_INBOX: frozenset({OPERATOR}),
    MARK_READ: frozenset({OPERATOR}),
    READ_ACTIVITY: frozenset({OPERATOR}),
    RESEND: frozenset({OPERATOR}),
}
