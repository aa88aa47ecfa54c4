"""Months and day intervals: the calendar arithmetic of the recovery monitor (pure).

A month is an integer, ``year * 12 + (month - 1)``, so consecutive months are consecutive integers and a set
of months is a union of half-open ranges ``[start, end)``; ``end=None`` is open-ended (every month from
``start`` on). A signal is a half-open interval of days ``[first, until)``; it makes a party productive in
every month it overlaps (``docs/rules/monitoring.md``, "Overlap").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "DayInterval",
    "MonthRange",
    "Months",
    "month_label",
    "month_of",
    "month_start",
    "parse_month",
]

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def month_of(day: date) -> int:
    """The month a day falls in."""
    return day.year * 12 + day.month - 1


def month_start(month: int) -> date:
    return date(month // 12, month % 12 + 1, 1)


def month_label(month: int) -> str:
    """``2021-03``."""
    return f"{month // 12:04d}-{month % 12 + 1:02d}"


def parse_month(text: str) -> int:
    """The month of ``YYYY-MM``; ``ValueError`` naming the text otherwise."""
    match = _MONTH.match(text)
    if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1:  # noqa: PLR2004 - months
        msg = f"a month is YYYY-MM, not {text!r}"
        raise ValueError(msg)
    return int(match.group(1)) * 12 + int(match.group(2)) - 1


@dataclass(frozen=True, slots=True, order=True)
class DayInterval:
    """Days ``[first, until)``; ``until=None`` is open-ended."""

    first: date
    until: date | None = None

    @property
    def empty(self) -> bool:
        return self.until is not None and self.until <= self.first

    def months(self) -> MonthRange | None:
        """The months this interval overlaps (at least one day of the month inside it), or None if empty."""
        if self.empty:
            return None
        end = None if self.until is None else month_of(self.until - timedelta(days=1)) + 1
        return MonthRange(month_of(self.first), end)

    def intersect(self, other: DayInterval) -> DayInterval:
        first = max(self.first, other.first)
        if self.until is None:
            until = other.until
        elif other.until is None:
            until = self.until
        else:
            until = min(self.until, other.until)
        return DayInterval(first, until)


@dataclass(frozen=True, slots=True, order=True)
class MonthRange:
    """Months ``[start, end)``; ``end=None`` is open-ended."""

    start: int
    end: int | None = None

    def __contains__(self, month: object) -> bool:
        return isinstance(month, int) and self.start <= month and (self.end is None or month < self.end)


@dataclass(frozen=True, slots=True)
class Months:
    """A set of months: sorted, disjoint, non-adjacent ranges (a normal form: equal sets compare equal)."""

    ranges: tuple[MonthRange, ...] = ()

    @classmethod
    def union(cls, ranges: Iterable[MonthRange | None]) -> Months:
        merged: list[MonthRange] = []
        for r in sorted(r for r in ranges if r is not None and (r.end is None or r.end > r.start)):
            if merged:
                last = merged[-1]
                if last.end is None:
                    break
                if r.start <= last.end:
                    end = None if r.end is None else max(last.end, r.end)
                    merged[-1] = MonthRange(last.start, end)
                    continue
            merged.append(r)
        return cls(tuple(merged))

    def __contains__(self, month: object) -> bool:
        return any(month in r for r in self.ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def intersect(self, other: Months) -> Months:
        out: list[MonthRange] = []
        for a in self.ranges:
            for b in other.ranges:
                start = max(a.start, b.start)
                ends = [e for e in (a.end, b.end) if e is not None]
                end = min(ends) if ends else None
                if end is None or end > start:
                    out.append(MonthRange(start, end))
        return Months.union(out)

    def deltas(self, sign: int = 1) -> dict[int, int]:
        """The set as a difference array: +sign where a range starts, -sign where it ends. The running sum
        of the deltas up to a month is 1 inside the set and 0 outside."""
        out: dict[int, int] = {}
        for r in self.ranges:
            out[r.start] = out.get(r.start, 0) + sign
            if r.end is not None:
                out[r.end] = out.get(r.end, 0) - sign
        return {m: d for m, d in out.items() if d}

    def to_sql(self) -> str:
        """Postgres ``int4multirange`` text: ``{[a,b),[c,)}``."""
        parts = [f"[{r.start},{'' if r.end is None else r.end})" for r in self.ranges]
        return "{" + ",".join(parts) + "}"

    @classmethod
    def from_sql(cls, text: str | None) -> Months:
        """From Postgres ``int4multirange`` text (as ``to_sql`` writes it and Postgres prints it)."""
        if not text or text == "{}":
            return cls()
        ranges = []
        for part in re.findall(r"[\[(][^\])]*[\])]", text):
            lo, hi = part[1:-1].split(",")
            start = int(lo) + (1 if part[0] == "(" else 0)
            end = None if hi == "" else int(hi) + (1 if part[-1] == "]" else 0)
            ranges.append(MonthRange(start, end))
        return cls.union(ranges)

    def labels(self) -> list[dict[str, str | None]]:
        return [
            {"from": month_label(r.start), "until": None if r.end is None else month_label(r.end - 1)}
            for r in self.ranges
        ]
