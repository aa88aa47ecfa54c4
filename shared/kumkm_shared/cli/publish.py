"""``kumkm publish``: validate an event against its contract, then publish it with de-duplication."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kumkm_shared.cli.files import read_input
from kumkm_shared.contracts import ContractError, FieldError, validate_event_payload
from kumkm_shared.integrators import org_id_problem, roles_for, sender_subject
from kumkm_shared.messaging.outbox import nats_headers

if TYPE_CHECKING:
    from pathlib import Path

    from kumkm_shared.contracts import DecodedEvent

# Stable ids for events given without one, so publishing the same file twice is de-duplicated.
_NAMESPACE = uuid.UUID("6f1c1f2e-8f0a-4c55-9f7e-1d7c2a0b5e11")


def read_events(source: Path | str | None) -> list[dict[str, Any]]:
    """The events of a file (``None`` or ``-``: stdin); an unreadable file exits 2 (see ``cli.files``)."""
    text = read_input(source)
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        # JSON lines: one event per line.
        try:
            parsed = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise ContractError(
                "undecodable", f"input is neither JSON nor JSON lines: {exc}", [FieldError("$", str(exc))]
            ) from None
    items = parsed if isinstance(parsed, list) else [parsed]
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ContractError(
                "undecodable", f"event #{i} is not a JSON object", [FieldError(f"[{i}]", "not an object")]
            )
    return items


def complete_envelope(obj: dict[str, Any]) -> dict[str, Any]:
    """Fill the envelope attributes an integrator may leave out; never touch ``data``."""
    out = dict(obj)
    out.setdefault("specversion", "1.0")
    out.setdefault("datacontenttype", "application/json")
    out.setdefault("source", "kumkm/cli")
    out.setdefault("time", datetime.now(UTC).isoformat())
    if "id" not in out:
        canonical = json.dumps(
            {"type": out.get("type"), "data": out.get("data")}, sort_keys=True, default=str
        )
        out["id"] = str(uuid.uuid5(_NAMESPACE, canonical))
    return out


class InvalidInputError(ValueError):
    """One or more events in the input broke their contracts; ``str()`` names every bad field."""


def validate_all(items: list[dict[str, Any]]) -> list[DecodedEvent]:
    """Validate every event before anything is published; the first error names the event."""
    events: list[DecodedEvent] = []
    problems: list[str] = []
    for i, item in enumerate(items):
        try:
            events.append(validate_event_payload(complete_envelope(item)))
        except ContractError as exc:
            prefix = f"event #{i}" if len(items) > 1 else "event"
            problems.append(f"{prefix} ({item.get('type', 'no type')}): {exc}")
    if problems:
        raise InvalidInputError("\n".join(problems))
    return events


def subject_for(event_type: str, sender: str | None) -> str:
    """Where ``kumkm publish`` sends an event: integrators' types on ``<type>.<organisation>``."""
    if not roles_for(event_type):
        if sender is not None:
            raise InvalidInputError(
                f"--as: {event_type} is published only by its own service, never by an organisation"
            )
        return event_type
    if sender is None:
        raise InvalidInputError(
            f"--as: {event_type} is an integrator's event; name the organisation whose credentials you use"
            " (--as ORG)"
        )
    problem = org_id_problem(sender)
    if problem is not None:
        raise InvalidInputError(f"--as: {problem}")
    return sender_subject(event_type, sender)


def headers_for(event: DecodedEvent) -> dict[str, str]:
    return nats_headers(event.envelope)
