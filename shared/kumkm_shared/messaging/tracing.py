"""W3C trace context carried in every envelope (``traceparent``) and in the NATS headers.

A flow that starts in this system (an HTTP command, a timer) gets a new trace; every event caused by
another one continues its trace with a new span id, so a trace backend (or a grep of the logs, which
carry the traceparent) links a request to every consequence across services.
"""

from __future__ import annotations

import re
import secrets

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def child_traceparent(parent: str | None) -> str:
    """Continue ``parent``'s trace with a new span; start a new trace when there is no valid parent."""
    match = _TRACEPARENT.match(parent or "")
    if not match:
        return new_traceparent()
    return f"00-{match.group(1)}-{secrets.token_hex(8)}-{match.group(3)}"


def trace_id(traceparent: str | None) -> str | None:
    match = _TRACEPARENT.match(traceparent or "")
    return match.group(1) if match else None
