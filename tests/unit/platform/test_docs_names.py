"""Every dotted code name the docs cite (``kumkm_catalog.domain.placement.assess_order``) exists in the code,
so docs/ and the READMEs cannot drift from the modules, classes and functions they point a newcomer to."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
DOCS = sorted([*ROOT.glob("docs/**/*.md"), ROOT / "README.md", *ROOT.glob("services/*/README.md")])
NAME = re.compile(r"`(kumkm_(?:shared|loans|catalog|notifications)(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def cited() -> list[tuple[str, int, str]]:
    found = []
    for path in DOCS:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            found.extend((str(path.relative_to(ROOT)), number, name) for name in NAME.findall(line))
    return found


def test_the_docs_cite_code_names() -> None:
    assert len(cited()) > 50, "the scan finds the docs' code names"


def test_a_missing_name_is_caught() -> None:
    assert resolves("kumkm_catalog.domain.placement.assess_order")
    assert not resolves("kumkm_catalog.domain.orders.assess_order")
    assert not resolves("kumkm_catalog.clock")


def test_every_code_name_the_docs_cite_exists() -> None:
    missing = [f"{path}:{line}: {name}" for path, line, name in cited() if not resolves(name)]
    assert not missing, "the docs cite names the code does not have:\n" + "\n".join(missing)
