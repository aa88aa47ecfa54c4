"""The base class of every event payload, and the small models several events share."""

from collections.abc import Sequence
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from kumkm_shared.contracts.types import Name, ReasonCode, Text

__all__ = ["EventData", "Reason", "check_reason_codes"]


class EventData(BaseModel):
    """Base class of every event's `data`.

    Subclasses set two class variables:

    - `event_type`: the full CloudEvents type, which is the NATS subject (or its prefix, for an organisation),
      e.g. `kumkm.loans.restructuring.requested.v1`;
    - `aggregate_field`: the name of the field whose value is the CloudEvents `subject`.

    Unknown fields are ignored (consumers must tolerate fields added by compatible changes) and instances
    are immutable.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_type: ClassVar[str]
    aggregate_field: ClassVar[str]

    def aggregate_id(self) -> str:
        """The aggregate id, used as the CloudEvents `subject`."""
        return str(getattr(self, self.aggregate_field))


class Reason(BaseModel):
    """A machine-readable reason code with its explanation in Indonesian and English."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    code: ReasonCode
    text_id: Name
    text_en: Name
    ref: Text | None = None
    """What the reason is about, when it concerns one item (for example a product id)."""


def check_reason_codes(reason_codes: Sequence[str], reasons: Sequence[Reason]) -> None:
    """Raise `ValueError` unless `reason_codes` and the codes of `reasons` are the same set."""
    listed = set(reason_codes)
    explained = {reason.code for reason in reasons}
    if listed == explained:
        return
    parts = []
    if missing := sorted(listed - explained):
        parts.append(f"codes without a reason text: {', '.join(missing)}")
    if unlisted := sorted(explained - listed):
        parts.append(f"reasons whose code is not in reason_codes: {', '.join(unlisted)}")
    msg = "reason_codes and reasons must name the same codes (" + "; ".join(parts) + ")"
    raise ValueError(msg)
