"""Every ``kumkm`` command that takes a path reports a bad one in a sentence and exits 2, never a traceback.

A missing file, a directory where a file is expected, a file that cannot be read and a file that is not
UTF-8 all get the same treatment: a message naming what is wrong and the path, and exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from kumkm_catalog.__main__ import app as catalog_service_app
from kumkm_shared.cli.main import app
from kumkm_shared.contracts.schemas import CATALOG_BEGIN, CATALOG_END
from tests.support.events import loan_disbursed

pytestmark = pytest.mark.unit

NOT_UTF8 = b'{"type": "caf\xe9"}'  # latin-1, not UTF-8


@pytest.fixture(autouse=True)
def _no_running_system(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("KUMKM_NATS_URL", "KUMKM_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def invoke(args: list[str], stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(app, args, input=stdin)


def assert_bad_path(result: Result, *phrases: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


# -- publish and check: the event file -----------------------------------------------------------------


@pytest.mark.parametrize("command", ["check", "publish"])
def test_missing_event_file(command: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    assert_bad_path(invoke([command, str(missing)]), "file not found", str(missing))


def test_missing_event_file_relative_path() -> None:
    assert_bad_path(invoke(["check", "missing.json"]), "file not found: missing.json")


@pytest.mark.parametrize("command", ["check", "publish"])
def test_directory_given_as_event_file(command: str, tmp_path: Path) -> None:
    folder = tmp_path / "events"
    folder.mkdir()
    assert_bad_path(invoke([command, str(folder)]), "is a directory", str(folder))


@pytest.mark.parametrize("command", ["check", "publish"])
def test_parent_is_not_a_directory(command: str, tmp_path: Path) -> None:
    parent = tmp_path / "plain.txt"
    parent.write_text("x")
    assert_bad_path(invoke([command, str(parent / "event.json")]), "not found", str(parent / "event.json"))


@pytest.mark.parametrize("command", ["check", "publish"])
def test_unreadable_event_file(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.json"
    path.write_text(json.dumps(loan_disbursed()))
    path.chmod(0)
    real_read_bytes = Path.read_bytes

    def read_bytes(self: Path) -> bytes:  # root ignores file modes: refuse the way the kernel would
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    assert_bad_path(invoke([command, str(path)]), "permission denied", str(path))


@pytest.mark.parametrize("command", ["check", "publish"])
def test_event_file_not_utf8(command: str, tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(NOT_UTF8)
    assert_bad_path(invoke([command, str(path)]), "not UTF-8", str(path))


def test_stdin_not_utf8() -> None:
    assert_bad_path(invoke(["check", "-"], stdin=NOT_UTF8), "not UTF-8", "stdin")


def test_invalid_json_still_reported_as_invalid(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    assert_bad_path(invoke(["check", str(path)]), "invalid", "neither JSON nor JSON lines")


def test_good_file_still_checks(tmp_path: Path) -> None:
    path = tmp_path / "good.json"
    path.write_text(json.dumps(loan_disbursed()))
    result = invoke(["check", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid kumkm.loans.loan.disbursed.v1" in result.stdout


# -- schemas readme / export / check ---------------------------------------------------------------------


def test_schemas_readme_missing(tmp_path: Path) -> None:
    missing = tmp_path / "README.md"
    assert_bad_path(invoke(["schemas", "readme", str(missing)]), "file not found", str(missing))


def test_schemas_readme_directory(tmp_path: Path) -> None:
    assert_bad_path(invoke(["schemas", "readme", str(tmp_path)]), "is a directory", str(tmp_path))


def test_schemas_readme_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_bytes(NOT_UTF8)
    assert_bad_path(invoke(["schemas", "readme", "--check", str(path)]), "not UTF-8", str(path))


def test_schemas_readme_without_markers(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text("# no catalog here\n")
    assert_bad_path(invoke(["schemas", "readme", str(path)]), "marker", str(path))
    assert path.read_text() == "# no catalog here\n"


def test_schemas_readme_regenerates(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text(f"# x\n{CATALOG_BEGIN}\nold\n{CATALOG_END}\n")
    result = invoke(["schemas", "readme", str(path)])
    assert result.exit_code == 0, result.output
    assert "kumkm.loans.loan.disbursed.v1" in path.read_text()


def test_schemas_export_under_a_file(tmp_path: Path) -> None:
    parent = tmp_path / "plain.txt"
    parent.write_text("x")
    target = parent / "events"
    assert_bad_path(invoke(["schemas", "export", str(target)]), str(target))


def test_schemas_export_where_a_schema_file_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "envelope.json").mkdir()
    assert_bad_path(invoke(["schemas", "export", str(tmp_path)]), "is a directory", "envelope.json")


def test_schemas_check_and_export_treat_a_non_utf8_schema_as_stale(tmp_path: Path) -> None:
    assert invoke(["schemas", "export", str(tmp_path)]).exit_code == 0
    (tmp_path / "envelope.json").write_bytes(NOT_UTF8)
    result = invoke(["schemas", "check", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "stale:" in result.stderr
    assert "envelope.json" in result.stderr
    result = invoke(["schemas", "export", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert invoke(["schemas", "check", str(tmp_path)]).exit_code == 0


# -- --data-dir: the running system's run.json -------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["streams"], ["tail"], ["provision"], ["dlq", "list"], ["catalog", "stats"], ["loans", "progress"]],
)
def test_corrupt_run_json(args: list[str], tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "run.json").write_text("{truncated")
    assert_bad_path(
        invoke([*args, "--data-dir", str(data_dir)]), "not valid JSON", str(data_dir / "run.json")
    )


def test_run_json_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "run.json").mkdir()
    result = invoke(["streams", "--data-dir", str(tmp_path)])
    assert_bad_path(result, "is a directory", str(tmp_path / "run.json"))


def test_no_running_system_is_still_exit_3(tmp_path: Path) -> None:
    result = invoke(["streams", "--data-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 3, result.output
    assert "no running system found" in result.stderr


def test_up_with_a_file_as_data_dir(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert_bad_path(invoke(["up", "--data-dir", str(plain)]), "not a directory", str(plain))


# -- a service's own CLI: asyncapi --out ------------------------------------------------------------------


def test_asyncapi_out_into_a_missing_directory(tmp_path: Path) -> None:
    out = tmp_path / "nowhere" / "catalog.yaml"
    result = CliRunner().invoke(catalog_service_app, ["asyncapi", "--out", str(out)])
    assert_bad_path(result, "not found", str(out))
