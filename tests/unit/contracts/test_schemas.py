import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kumkm_shared.cli.schemas import app
from kumkm_shared.contracts import EVENTS
from kumkm_shared.contracts.schemas import (
    diff_schemas,
    export_schemas,
    render_catalog_markdown,
    render_schemas,
)

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[3] / "docs" / "events"


def test_committed_schemas_are_up_to_date() -> None:
    stale = diff_schemas(DOCS)
    assert stale == [], f"docs/events is stale ({', '.join(stale)}); run `kumkm schemas export`"
    for name, text in render_schemas().items():
        assert (DOCS / name).read_text(encoding="utf-8") == text


def test_render_is_deterministic_and_complete() -> None:
    first = render_schemas()
    assert first == render_schemas()
    assert set(first) == {f"{t}.json" for t in EVENTS} | {"envelope.json", "README.md"}
    for name, text in first.items():
        assert text.endswith("\n")
        if name.endswith(".json"):
            schema = json.loads(text)
            assert text == json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            assert schema["$id"].endswith(name)


def test_event_schema_metadata() -> None:
    schema = json.loads(render_schemas()["kumkm.loans.restructuring.requested.v1.json"])
    assert schema["title"] == "kumkm.loans.restructuring.requested.v1"
    assert schema["x-kumkm-stream"] == "KUMKM_LOANS"
    assert schema["x-kumkm-external"] is True
    assert schema["x-kumkm-context"] == "loans"
    assert schema["description"].startswith("A borrower asks for relief")
    assert schema["$defs"]["TenorExtension"]["required"] == ["scheme", "extra_months"]
    assert schema["properties"]["proposal"]["items"]["discriminator"]["propertyName"] == "scheme"


def test_catalog_markdown() -> None:
    table = render_catalog_markdown()
    rows = table.strip().splitlines()
    assert rows[0] == "| type | context | stream | ext | description |"
    assert len(rows) == 2 + len(EVENTS)
    assert (
        "| `kumkm.catalog.order.delivered.v1` | catalog | `KUMKM_CATALOG` | yes | "
        "The buyer checked the goods and signed the handover record (BAST). |"
    ) in rows


def test_export_then_diff(tmp_path: Path) -> None:
    assert diff_schemas(tmp_path) == sorted(render_schemas())
    written = export_schemas(tmp_path)
    assert written == sorted(render_schemas())
    assert diff_schemas(tmp_path) == []
    (tmp_path / "kumkm.loans.loan.disbursed.v1.json").write_text("{}\n")
    (tmp_path / "kumkm.loans.loan.gone.v1.json").write_text("{}\n")
    (tmp_path / "notes.txt").write_text("not ours\n")
    assert diff_schemas(tmp_path) == ["kumkm.loans.loan.disbursed.v1.json", "kumkm.loans.loan.gone.v1.json"]
    assert export_schemas(tmp_path) == ["kumkm.loans.loan.disbursed.v1.json", "kumkm.loans.loan.gone.v1.json"]
    assert not (tmp_path / "kumkm.loans.loan.gone.v1.json").exists()
    assert (tmp_path / "notes.txt").exists()
    assert export_schemas(tmp_path) == []


def test_cli_export_and_check(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "events"
    result = runner.invoke(app, ["check", str(target)])
    assert result.exit_code == 1
    assert "missing:" in result.output
    result = runner.invoke(app, ["export", str(target)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["check", str(target)])
    assert result.exit_code == 0, result.output
    (target / "envelope.json").write_text("{}\n")
    result = runner.invoke(app, ["check", str(target)])
    assert result.exit_code == 1
    assert "stale:" in result.output
    assert "envelope.json" in result.output
    result = runner.invoke(app, ["catalog"])
    assert result.exit_code == 0
    assert result.output == render_catalog_markdown()
