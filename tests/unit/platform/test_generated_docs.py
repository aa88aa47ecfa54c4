"""Generated documentation stays generated: the README's event catalog matches the contracts."""

from __future__ import annotations

from pathlib import Path

import pytest

from kumkm_shared.contracts.schemas import with_catalog_block

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def test_readme_event_catalog_is_generated_from_the_contracts() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert with_catalog_block(text) == text, "run `kumkm schemas readme` to regenerate the README's catalog"
    assert "`kumkm.catalog.order.placed.v1`" in text
