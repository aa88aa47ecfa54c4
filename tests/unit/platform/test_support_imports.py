"""Test support code stands below every test tier: tests/support and kumkm_shared.testing import no tier.

A helper that imports from tests.unit, tests.integration or tests.acceptance ties every user of the helper
to that tier (and its conftest fixtures); shared samples and builders belong in tests/support instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
SUPPORT_PACKAGES = {
    "tests.support": ROOT / "tests" / "support",
    "kumkm_shared.testing": ROOT / "shared" / "kumkm_shared" / "testing",
}
TIERS = ("tests.unit", "tests.integration", "tests.acceptance")


def _is_tier(module: str) -> bool:
    return any(module == tier or module.startswith(f"{tier}.") for tier in TIERS)


def _imported(tree: ast.Module, package: str) -> list[tuple[int, str]]:
    """Every module a source imports (``from a import b`` counts as ``a`` and ``a.b``), with its line.

    Relative imports are resolved against ``package``; ``pytest_plugins`` strings count as imports.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytest_plugins" for t in node.targets
        ):
            found.extend(
                (node.lineno, c.value)
                for c in ast.walk(node.value)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            )
    return found


def tier_imports(source: str, package: str) -> list[tuple[int, str]]:
    return [(line, module) for line, module in _imported(ast.parse(source), package) if _is_tier(module)]


def _sources() -> list[tuple[Path, str]]:
    sources: list[tuple[Path, str]] = []
    for prefix, folder in SUPPORT_PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            relative = path.relative_to(folder).with_suffix("").parts
            package = ".".join((prefix, *relative[:-1]))
            sources.append((path, package))
    return sources


def test_support_code_imports_no_test_tier() -> None:
    sources = _sources()
    assert len(sources) >= 5, f"the scan found too few files to be looking in the right place: {sources}"
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path, package in sources
        for line, module in tier_imports(path.read_text(), package)
    ]
    assert offending == []


# What each tier may import of the others: samples and builders shared across tiers live in tests/support.
# Acceptance tests run whole flows and reuse the integration tier's fixtures and sinks; nothing else crosses.
MAY_IMPORT = {
    "tests.unit": (),
    "tests.integration": (),
    "tests.acceptance": ("tests.integration",),
}


def test_no_test_tier_imports_another_tier() -> None:
    offending = []
    for tier, allowed in MAY_IMPORT.items():
        folder = ROOT / Path(*tier.split("."))
        for path in sorted(folder.rglob("*.py")):
            package = ".".join((tier, *path.relative_to(folder).with_suffix("").parts[:-1]))
            offending.extend(
                f"{path.relative_to(ROOT)}:{line} imports {module}"
                for line, module in tier_imports(path.read_text(), package)
                if not any(module == t or module.startswith(f"{t}.") for t in (tier, *allowed))
            )
    assert offending == []


@pytest.mark.parametrize(
    "source",
    [
        "import tests.unit.contracts.samples",
        "from tests.integration.catalog import samples",
        "from tests import acceptance",
        "from ..unit import x",
        "pytest_plugins = ['tests.integration.loans.conftest']",
        "def f():\n    from tests.unit.loans.factories import loan\n",
    ],
)
def test_the_scan_sees_every_kind_of_tier_import(source: str) -> None:
    assert tier_imports(source, "tests.support") != []


@pytest.mark.parametrize(
    "source",
    [
        "from tests.support.samples import SAMPLES",
        "from . import events",
        "import tests.units_of_measure",
        "from kumkm_shared.testing import wait_for",
    ],
)
def test_the_scan_lets_support_imports_through(source: str) -> None:
    assert tier_imports(source, "tests.support") == []
