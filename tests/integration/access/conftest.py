"""Print the permission matrix's figures at the end of a session that ran its cells."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.integration.access.matrix import TALLY

if TYPE_CHECKING:
    import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLY.attempts:
        return
    terminalreporter.section("permission matrix")
    for name, value in TALLY.figures().items():
        terminalreporter.write_line(f"{name}: {value}")
    wrong = [a for a in TALLY.attempts if a.wrongly_allowed or a.wrongly_denied]
    for attempt in wrong:
        how = "wrongly allowed" if attempt.wrongly_allowed else "wrongly denied"
        known = f" (known bug: {attempt.cell.bug})" if attempt.cell.bug else ""
        terminalreporter.write_line(f"  {how}: {attempt.cell.id} -> {attempt.status}{known}")
