"""Who may do what on the bus: the one table of the platform's NATS users and of the integrator roles.

This is the single source of the permissions: ``kumkm nats init`` signs the platform users' JWTs from
``PLATFORM_USERS``, and the INTEGRATORS account JWT carries one scoped signing key per integrator role whose
template is ``role_template(role)``. The server enforces both; the deploy tests check them
(tests/integration/deploy/test_deploy_nats_permissions.py).

Platform users (account KUMKM, except ``sys``):

- ``loans``, ``catalog``, ``notifications``: one per service. Publish its own context (``kumkm.<ctx>.>``)
  and its DLQ subject (``kumkm.dlq.<service>``); read messages of the DLQ stream by sequence (operators'
  ``/dlq``); use the JetStream API only to look up and pull from its own
  durable consumers, ack their messages, fetch messages named in max-deliveries advisories, and read the
  mandates bucket (``KUMKM_MANDATES``); replies on a private inbox ``_INBOX_<service>``.
- ``monitoring``: the read side. Pulls from its durables on the registry, loans and catalog streams and
  publishes only its DLQ subject (``kumkm.dlq.monitoring``): it owns no stream and emits no event.
- ``provision``: ``kumkm provision``, stream, consumer and bucket administration (``$JS.API.>``); no
  application subject.
- ``operator``: the ``kumkm`` CLI run by an operator: every subject of the account.
- ``sys`` (account SYS): pushes account JWTs (``$SYS.REQ.CLAIMS.UPDATE``) and lists connections; nothing
  else.

Integrator organisations (account INTEGRATORS; one user each, signed with its role's scoped key; the user's
name is the organisation id, ``{{name()}}`` in the template): publish ``<type>.<org>`` for each "ext" type
of the role (``kumkm_shared.integrators.ROLE_EVENTS``), which INTEGRATORS imports from KUMKM as a service
(``integrator_exports``), PubAcks on ``_INBOX_<org>``; no ``$JS.API`` at all, nothing else to read. The
server applies the template whatever the user JWT says.
"""

from __future__ import annotations

from typing import Any

from kumkm_shared.contracts import DLQ_STREAM
from kumkm_shared.integrators import ROLE_EVENTS, IntegratorRole
from kumkm_shared.mandates import BUCKET as MANDATES_BUCKET

__all__ = ["PLATFORM_USERS", "SERVICE_CONSUMERS", "Permissions", "integrator_exports", "role_template"]

Permissions = dict[str, Any]  # {"pub": {"allow": [...]}, "sub": {"allow": [...]}} as in a user JWT

SYS_USER = "sys"

# service -> (stream, durable) pairs it pulls from (kumkm_shared.messaging.topology declares the same).
SERVICE_CONSUMERS: dict[str, tuple[tuple[str, str], ...]] = {
    "loans": (("KUMKM_LOANS", "loans"),),
    "catalog": (("KUMKM_CATALOG", "catalog"),),
    "notifications": (
        ("KUMKM_LOANS", "notifications-loans"),
        ("KUMKM_CATALOG", "notifications-catalog"),
        ("KUMKM_NOTIFICATIONS", "notifications-contacts"),
    ),
    "monitoring": (
        ("KUMKM_REGISTRY", "monitoring-registry"),
        ("KUMKM_LOANS", "monitoring-loans"),
        ("KUMKM_CATALOG", "monitoring-catalog"),
    ),
}
_OWN_STREAM = {"loans": "KUMKM_LOANS", "catalog": "KUMKM_CATALOG", "notifications": "KUMKM_NOTIFICATIONS"}


def _mandate_reads() -> list[str]:
    stream = f"KV_{MANDATES_BUCKET}"
    return [
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
        f"$JS.API.STREAM.MSG.GET.{stream}",
    ]


def _service(service: str) -> Permissions:
    consumers = SERVICE_CONSUMERS[service]
    own = _OWN_STREAM.get(service)  # a pure read side (monitoring) owns no stream and publishes no event
    streams = list(dict.fromkeys([*(s for s, _ in consumers), *([own] if own else [])]))
    pub = [
        *([f"kumkm.{service}.>"] if own else []),
        f"kumkm.dlq.{service}",
        "$JS.API.INFO",
        "$JS.API.STREAM.NAMES",
        *(f"$JS.API.STREAM.INFO.{s}" for s in streams),
        *(f"$JS.API.STREAM.MSG.GET.{s}" for s in streams),
        # Its dead letters, read one by one for operators (``/dlq``, kumkm_shared/service/dlq_api.py).
        f"$JS.API.STREAM.MSG.GET.{DLQ_STREAM}",
        *(f"$JS.API.CONSUMER.INFO.{s}.{d}" for s, d in consumers),
        *(f"$JS.API.CONSUMER.MSG.NEXT.{s}.{d}" for s, d in consumers),
        *(f"$JS.ACK.{s}.{d}.>" for s, d in consumers),
        *_mandate_reads(),
    ]
    sub = [
        f"_INBOX_{service}.>",
        *(f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{s}.{d}" for s, d in consumers),
    ]
    return {"pub": {"allow": pub}, "sub": {"allow": sub}}


# user name -> (account, permissions); an empty permissions object means every subject of the account.
PLATFORM_USERS: dict[str, tuple[str, Permissions]] = {
    **{service: ("KUMKM", _service(service)) for service in SERVICE_CONSUMERS},
    "provision": ("KUMKM", {"pub": {"allow": ["$JS.API.>"]}, "sub": {"allow": ["_INBOX_provision.>"]}}),
    "operator": ("KUMKM", {}),
    SYS_USER: (
        "SYS",
        {
            "pub": {
                "allow": [
                    "$SYS.REQ.CLAIMS.UPDATE",
                    "$SYS.REQ.ACCOUNT.*.CLAIMS.UPDATE",
                    "$SYS.REQ.SERVER.PING.CONNZ",
                    "$SYS.REQ.ACCOUNT.*.CONNZ",
                ]
            },
            "sub": {"allow": ["_INBOX_sys.>"]},
        },
    ),
}

INBOX_PREFIX = {name: (None if name == "operator" else f"_INBOX_{name}") for name in PLATFORM_USERS}


def role_template(role: IntegratorRole) -> Permissions:
    """The permissions a role's scoped signing key gives every user it signs (``{{name()}}`` = the org)."""
    return {
        "pub": {"allow": [f"{event_type}.{{{{name()}}}}" for event_type in ROLE_EVENTS[role]]},
        "sub": {"allow": ["_INBOX_{{name()}}.>"]},
    }


def integrator_exports() -> list[dict[str, Any]]:
    """The services the KUMKM account exports to INTEGRATORS: ``<type>.*`` for every integrator event type.

    A service (not a stream) export: a publish through it carries a reply subject that the server replaces
    with a private ``_R_`` one in KUMKM and maps back into INTEGRATORS, so the stream's PubAck reaches the
    organisation and a reply subject it chose never addresses a KUMKM subject. ``*`` is one token: the
    sender's organisation id, which the role's template restricts to the user's own name.
    """
    types = sorted({event_type for types in ROLE_EVENTS.values() for event_type in types})
    return [
        {"name": event_type, "type": "service", "subject": f"{event_type}.*", "response_type": "Singleton"}
        for event_type in types
    ]
