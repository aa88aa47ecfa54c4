"""The architecture rules: services never import each other, shared imports no service, every service has
the same layers (app > api > handlers > repository > domain) and a pure domain. See docs/architecture.md,
"The shape of a service"."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
LAYERS = ["app", "api", "handlers", "repository", "domain"]
# The web console is the one service without events or a database: pages over the others' APIs, no domain.
WEB_ONLY = {
    "kumkm_console": ["__main__", "app", "api", "web", "signin | clients", "sessions", "settings | i18n"]
}


def _contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _services() -> list[str]:
    return sorted(p.name for p in (ROOT / "services").glob("*/kumkm_*") if (p / "__init__.py").exists())


def test_import_linter_contracts_hold() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for contract in _contracts():
        assert f"{contract['name']} KEPT" in result.stdout, result.stdout


@pytest.mark.parametrize("package", sorted(WEB_ONLY))
def test_the_console_has_its_layers_and_holds_no_business_state(package: str) -> None:
    layered = [c for c in _contracts() if c["type"] == "layers" and c.get("containers") == [package]]
    assert layered, f"{package} has no layers contract in pyproject.toml"
    assert layered[0]["layers"] == WEB_ONLY[package]
    stateless = [c for c in _contracts() if c["name"] == "console holds no business state"]
    assert stateless, "the console's no-business-state contract is missing"
    assert stateless[0]["source_modules"] == [package]
    for library in ("asyncpg", "nats", "kumkm_shared.messaging", "kumkm_shared.db", "kumkm_shared.service"):
        assert library in stateless[0]["forbidden_modules"]
    independent = next(c for c in _contracts() if c["type"] == "independence")
    assert package in independent["modules"]


@pytest.mark.parametrize("package", [p for p in _services() if p not in WEB_ONLY])
def test_every_service_has_the_layers_contract_and_a_pure_domain(package: str) -> None:
    layered = [c for c in _contracts() if c["type"] == "layers" and c.get("containers") == [package]]
    assert layered, f"{package} has no layers contract in pyproject.toml"
    assert layered[0]["layers"] == LAYERS
    pure = [c for c in _contracts() if c["name"] == "domain imports no I/O library"]
    assert pure, "the pure-domain contract is missing"
    assert f"{package}.domain" in pure[0]["source_modules"]
    for library in ("asyncpg", "nats", "fastapi", "kumkm_shared.messaging", "kumkm_shared.db"):
        assert library in pure[0]["forbidden_modules"]
    independent = next(c for c in _contracts() if c["type"] == "independence")
    assert package in independent["modules"]


def test_the_layers_contract_catches_a_lower_layer_importing_a_higher_one(tmp_path: Path) -> None:
    # The same contract on a throwaway package whose repository imports its api: lint-imports must refuse.
    package = tmp_path / "kumkm_probe"
    (package / "domain").mkdir(parents=True)
    for name in ("__init__", "app", "api", "handlers", "domain/__init__"):
        (package / f"{name}.py").write_text("", encoding="utf-8")
    (package / "repository.py").write_text("from kumkm_probe import api\n", encoding="utf-8")
    layers = ", ".join(f'"{layer}"' for layer in LAYERS)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.importlinter]\nroot_packages = ["kumkm_probe"]\n\n[[tool.importlinter.contracts]]\n'
        f'name = "probe layers"\ntype = "layers"\ncontainers = ["kumkm_probe"]\nlayers = [{layers}]\n',
        encoding="utf-8",
    )
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(tmp_path), "PATH": str(Path(sys.executable).parent)},
    )
    assert result.returncode != 0, result.stdout + result.stderr
    assert "probe layers BROKEN" in result.stdout, result.stdout
    assert "kumkm_probe.repository -> kumkm_probe.api" in result.stdout, result.stdout
