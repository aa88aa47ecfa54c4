"""Errors raised when an event cannot be decoded or validated."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from pydantic import ValidationError

__all__ = ["ERROR_CODES", "ContractError", "ErrorCode", "FieldError", "field_errors"]

ErrorCode = Literal[
    "oversized",
    "undecodable",
    "invalid_envelope",
    "unknown_type",
    "unsupported_version",
    "schema_violation",
]
ERROR_CODES: Final[tuple[ErrorCode, ...]] = get_args(ErrorCode)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One bad field: a dotted path such as ``data.proposal.0.extra_months`` and what is wrong with it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ContractError(Exception):
    """An event broke its contract.

    ``code`` is machine-readable (see ``ErrorCode``), ``message`` says what happened and ``errors`` names
    each bad field. ``str()`` renders all of it on several lines.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        errors: Sequence[FieldError] = (),
        *,
        event_type: str | None = None,
        event_id: str | None = None,
    ) -> None:
        super().__init__(code, message, tuple(errors))
        self.code: ErrorCode = code
        self.message = message
        self.errors: list[FieldError] = list(errors)
        self.event_type = event_type
        self.event_id = event_id

    def __str__(self) -> str:
        lines = [f"{self.code}: {self.message}"]
        lines.extend(f"  - {error}" for error in self.errors)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"ContractError({self.code!r}, {self.message!r}, {self.errors!r})"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form, e.g. for a DLQ record or an HTTP 422 body."""
        result: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "errors": [{"field": error.field, "message": error.message} for error in self.errors],
        }
        if self.event_type is not None:
            result["event_type"] = self.event_type
        if self.event_id is not None:
            result["event_id"] = self.event_id
        return result


def _dotted(loc: Sequence[int | str], prefix: str, skip_tags: frozenset[str]) -> str:
    parts: list[str] = [prefix] if prefix else []
    previous: int | str | None = None
    for item in loc:
        # Discriminated unions put the tag after the list index: proposal.0.tenor_extension.extra_months.
        # Pydantic may also add a validator's name such as "function-after[...]"; neither is a field.
        skip = (isinstance(previous, int) and item in skip_tags) or (isinstance(item, str) and "[" in item)
        if not skip:
            parts.append(str(item))
        previous = item
    return ".".join(parts)


def field_errors(
    exc: ValidationError, *, prefix: str = "", skip_tags: Iterable[str] = ()
) -> list[FieldError]:
    """Turn a pydantic ``ValidationError`` into ``FieldError`` items with dotted paths under ``prefix``."""
    tags = frozenset(skip_tags)
    result: list[FieldError] = []
    for error in exc.errors(include_url=False, include_input=False):
        message = error["msg"]
        if error["type"] == "value_error" and message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        elif error["type"] == "assertion_error" and message.startswith("Assertion failed, "):
            message = message.removeprefix("Assertion failed, ")
        result.append(FieldError(_dotted(error["loc"], prefix, tags), message))
    return result
