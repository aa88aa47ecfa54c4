"""Templates and their formatting: Jinja2 files per event type and locale; rupiah by the platform's one
formatter (``kumkm_shared.money.format_rupiah``), dates and rates by Babel.

A template file is ``templates/<locale>/<event type>.j2`` with three blocks: ``subject``, ``text`` and
``html``. The html block is rendered with autoescaping, the other two without. A template that is
missing, or lacks a block, stops the service at start-up (``TemplateCatalog.check``). Rules:
``docs/rules/notifications.md``, section "Template selection".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from babel.dates import format_date, format_datetime
from babel.numbers import format_percent
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound, pass_context

from kumkm_shared.clock import JAKARTA
from kumkm_shared.contracts import Locale
from kumkm_shared.money import format_rupiah

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from jinja2.runtime import Context

TEMPLATES = Path(__file__).parent / "templates"
BLOCKS = ("subject", "text", "html")

COLLECTIBILITY = {
    Locale.ID_ID: {
        1: "lancar",
        2: "dalam perhatian khusus (DPK)",
        3: "kurang lancar",
        4: "diragukan",
        5: "macet",
    },
    Locale.EN_US: {1: "current", 2: "special mention", 3: "substandard", 4: "doubtful", 5: "loss"},
}


class MissingTemplateError(RuntimeError):
    """Some subscribed event has no template (or an incomplete one) in some locale."""


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


def long_date(value: date | str, locale: Locale | str) -> str:
    """``26 November 2026`` in Indonesian, ``November 26, 2026`` in English."""
    day = date.fromisoformat(value) if isinstance(value, str) else value
    return format_date(day, format="long", locale=str(locale))


def jakarta_datetime(value: datetime, locale: Locale | str) -> str:
    """A moment shown in Jakarta time: ``26 November 2026 14.30 WIB``."""
    local = value.astimezone(JAKARTA)
    return (
        f"{format_date(local.date(), format='long', locale=str(locale))} "
        + format_datetime(
            local, format="HH.mm" if str(locale) == Locale.ID_ID else "h:mm a", locale=str(locale)
        )
        + " WIB"
    )


def percent(rate: Decimal | str, locale: Locale | str) -> str:
    """An annual rate such as ``0.06`` as ``6%`` (``2,5%`` in Indonesian)."""
    return format_percent(Decimal(str(rate)), format="#,##0.##%", locale=str(locale))


def collectibility(grade: int, locale: Locale | str) -> str:
    """An OJK grade with its name: ``2 (dalam perhatian khusus (DPK))``, ``2 (special mention)``."""
    return f"{grade} ({COLLECTIBILITY[Locale(locale)][int(grade)]})"


def reason_text(reason: Any, locale: Locale | str) -> str:
    """A reason's text in the locale (``text_id`` in Indonesian, ``text_en`` otherwise)."""
    return str(reason.text_id if Locale(locale) is Locale.ID_ID else reason.text_en)


# Each filter formats its value in the locale of the template being rendered (the context's ``locale``).
FILTERS: dict[str, Callable[[Any, Locale], str]] = {
    "rupiah": format_rupiah,
    "date": long_date,
    "datetime": jakarta_datetime,
    "percent": percent,
    "collectibility": collectibility,
    "reason": reason_text,
}


def _in_locale(format_value: Callable[[Any, Locale], str]) -> Callable[[Context, Any], str]:
    """``format_value`` as a Jinja filter: the value, formatted in the template's locale."""

    @pass_context
    def apply(ctx: Context, value: Any) -> str:
        return format_value(value, Locale(ctx["locale"]))

    return apply


def _environment(directory: Path, *, autoescape: bool) -> Environment:
    # autoescape is on for the html block and off for subject and plain text, on purpose.
    env = Environment(
        loader=FileSystemLoader(directory),
        autoescape=autoescape,  # noqa: S701
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update({name: _in_locale(format_value) for name, format_value in FILTERS.items()})
    return env


class TemplateCatalog:
    def __init__(self, directory: Path = TEMPLATES) -> None:
        self.directory = directory
        self._text = _environment(directory, autoescape=False)
        self._html = _environment(directory, autoescape=True)

    @staticmethod
    def name(event_type: str, locale: Locale) -> str:
        return f"{locale.value}/{event_type}.j2"

    def check(self, event_types: Iterable[str]) -> None:
        """Fail loudly, naming every gap, unless each event type has all blocks in every locale."""
        problems: list[str] = []
        for event_type in sorted(event_types):
            for locale in Locale:
                name = self.name(event_type, locale)
                try:
                    template = self._text.get_template(name)
                except TemplateNotFound:
                    problems.append(f"{name}: missing")
                    continue
                problems.extend(
                    f"{name}: no '{block}' block" for block in BLOCKS if block not in template.blocks
                )
        if problems:
            raise MissingTemplateError(
                f"notification templates are incomplete in {self.directory}: " + "; ".join(problems)
            )

    def render(self, event_type: str, locale: Locale, context: dict[str, Any]) -> Rendered:
        variables = {**context, "locale": locale.value}
        parts: dict[str, str] = {}
        for block in BLOCKS:
            env = self._html if block == "html" else self._text
            template = env.get_template(self.name(event_type, locale))
            parts[block] = "".join(template.blocks[block](template.new_context(variables))).strip()
        return Rendered(
            subject=" ".join(parts["subject"].split()),  # a header is one line
            text=parts["text"] + "\n",
            html=parts["html"] + "\n",
        )
