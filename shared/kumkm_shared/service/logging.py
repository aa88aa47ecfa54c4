"""One logger setup for every process: structlog, JSON when not a terminal, console at a terminal.

No log line holds a password, a token, a secret, an e-mail address or a phone number, and no traceback
shows local variables: exceptions are formatted as plain text (``traceback``, which never prints locals)
before ``redact`` masks every value under a sensitive key and scrubs every string of the event, the
traceback included. Both renderers, and the standard library's records (uvicorn, faststream, asyncpg), go
through the same chain.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TYPE_CHECKING, Any, Final, Literal

import structlog

if TYPE_CHECKING:
    from collections.abc import MutableMapping
    from typing import TextIO

__all__ = ["MASK", "configure_logging", "redact"]

MASK: Final = "***"
# A key holding one of these is a credential: its value is never printed, whatever it is.
_SECRET_PARTS: Final = (
    "authorization",
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "private_key",
    "cookie",
    "credential",
)
# A key naming a person's address: its value is printed masked (``b***@example.co.id``, ``+62***1234``).
_ADDRESS_KEYS: Final = frozenset({"to", "cc", "bcc", "recipient", "recipients", "msisdn", "address"})
_ADDRESS_PARTS: Final = ("email", "e_mail", "phone", "mobile")
_SKIPPED: Final = frozenset({"timestamp", "level", "log_level", "logger"})

_EMAIL: Final = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE: Final = re.compile(r"(?<![\w+-])(?:\+62|0)[ .-]?8(?:[ .-]?\d){7,12}(?![\w-])")
_BEARER: Final = re.compile(r"(?i)\b(bearer|basic)\s+[\w.~+/=-]+")
_JWT: Final = re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*")
_URL_PASSWORD: Final = re.compile(r"(://[^\s:/@]+:)[^\s@/]+@")
_KEY_VALUE: Final = re.compile(
    r"(?i)\b([\w-]*(?:password|passwd|secret|token|api_key|apikey)[\w-]*)(\"?\s*[=:]\s*\"?)[^\s\"',;&}]+"
)
_PHONE_TAIL: Final = 4
_MAX_DEPTH: Final = 4  # nested dicts and lists looked into: deep enough for headers and small payloads


def _mask_email(value: str) -> str:
    local, at, domain = value.rpartition("@")
    return f"{local[0]}{MASK}@{domain}" if at and local else MASK


def _mask_phone(value: str) -> str:
    digits = re.sub(r"\D", "", value)
    if len(digits) <= _PHONE_TAIL + 2:
        return MASK
    head = "+" + digits[:2] if value.lstrip().startswith("+") else digits[:2]
    return f"{head}{MASK}{digits[-_PHONE_TAIL:]}"


def _scrub(text: str) -> str:
    """Free text (a message, an error, a traceback) with credentials and addresses in it masked."""
    text = _JWT.sub(MASK, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    text = _KEY_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _EMAIL.sub(lambda m: _mask_email(m.group()), text)
    return _PHONE.sub(lambda m: _mask_phone(m.group()), text)


def _mask_address(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_mask_address(v) for v in value]
    text = str(value)
    if _EMAIL.fullmatch(text.strip()):
        return _mask_email(text.strip())
    if sum(c.isdigit() for c in text) > _PHONE_TAIL + 2 and not re.search(r"[^\d\s+().-]", text):
        return _mask_phone(text)
    return _scrub(text) if _EMAIL.search(text) or _PHONE.search(text) else MASK


def _kind(key: object) -> Literal["secret", "address", "plain"]:
    name = str(key).lower().replace("-", "_")
    if any(part in name for part in _SECRET_PARTS):
        return "secret"
    if name in _ADDRESS_KEYS or any(part in name for part in _ADDRESS_PARTS):
        return "address"
    return "plain"


def _clean(key: object, value: Any, depth: int = 0) -> Any:
    kind = _kind(key)
    if kind == "secret":
        cleaned: Any = value if value is None or value == "" else MASK
    elif kind == "address":
        cleaned = _mask_address(value)
    elif isinstance(value, str):
        cleaned = _scrub(value)
    elif value is None or isinstance(value, (bool, int, float)):
        cleaned = value
    elif depth > _MAX_DEPTH:
        cleaned = MASK  # too deep to look through: masked, never passed on unread
    elif isinstance(value, dict):
        cleaned = {k: _clean(k, v, depth + 1) for k, v in value.items()}
    elif isinstance(value, (list, tuple)):
        cleaned = [_clean("", v, depth + 1) for v in value]
    else:
        cleaned = _scrub(repr(value))  # bytes, models, exceptions: rendered as repr, so scrub that
    return cleaned


def redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: mask values under keys like ``authorization``, ``password``, ``secret``,
    ``token``, ``webhook_secret`` (entirely) and ``email``, ``phone``, ``to`` (as ``b***@example.co.id``,
    ``+62***1234``), nested dicts included, and scrub every other string (the event, the traceback)."""
    for key, value in list(event_dict.items()):
        if key in _SKIPPED or (isinstance(key, str) and key.startswith("_")):
            continue
        event_dict[key] = _clean(key, value)
    return event_dict


def configure_logging(
    fmt: Literal["auto", "json", "console"] = "auto", level: str = "INFO", *, stream: TextIO | None = None
) -> None:
    """``stream``: where lines go (standard error by default)."""
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        # The default formatter is rich's traceback with ``show_locals``: a local holding a secret would
        # be printed. The traceback arrives as text already (``format_exc_info``), never with locals.
        else structlog.dev.ConsoleRenderer(
            colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    safe: list[structlog.typing.Processor] = [structlog.processors.format_exc_info, redact]
    structlog.configure(
        processors=[*shared, *safe, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), 20)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
    # Libraries (uvicorn, faststream, asyncpg) log through the standard library; route them the same way.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *safe, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
