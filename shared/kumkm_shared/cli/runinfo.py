"""How every ``kumkm`` command finds the running system: environment variables, then ``run.json``."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import typer
from rich.console import Console

from kumkm_shared.cli.files import fail, read_input

DEFAULT_DATA_DIR = Path(os.environ.get("KUMKM_DATA_DIR", ".kumkm"))


class SystemNotFoundError(RuntimeError):
    pass


@dataclass
class RunInfo:
    nats_url: str
    database_url: str
    services: dict[str, str] = field(default_factory=dict)  # name -> HTTP base URL
    mode: str = "env"
    pid: int | None = None
    # Sign-in: the OpenID issuer the services accept tokens of, and (only when `kumkm up` started the
    # embedded provider) the realm file it was configured from, where `--as USER` reads demo passwords.
    auth_issuer: str | None = None
    auth_audience: str = "kumkm"
    auth_realm: str | None = None
    # NATS in operator mode: the auth directory (`kumkm nats init`) whose creds the CLI connects with
    # (creds/operator.creds, or KUMKM_NATS_CREDS), whose keys `kumkm integrators` signs users with.
    nats_auth_dir: str | None = None

    def write(self, data_dir: Path) -> Path:
        path = data_dir / "run.json"
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, data_dir: Path) -> RunInfo:
        """The run.json in ``data_dir``; one that cannot be read or parsed exits 2 (see ``cli.files``)."""
        path = data_dir / "run.json"
        text = read_input(path)
        try:
            fields = json.loads(text)
        except json.JSONDecodeError as exc:
            fail(f"not valid JSON ({exc}): {path}")
        try:
            return cls(**fields)
        except TypeError:
            fail(f"not a run.json written by `kumkm up` (unexpected content): {path}")


def nats_credentials() -> tuple[str | None, str | None]:
    return os.environ.get("KUMKM_NATS_USER"), os.environ.get("KUMKM_NATS_PASSWORD")


def nats_creds_file(info: RunInfo | None = None) -> Path | None:
    """The .creds file the CLI connects with: KUMKM_NATS_CREDS, else the operator's of run.json's auth dir."""
    given = os.environ.get("KUMKM_NATS_CREDS")
    if given:
        return Path(given)
    if info is not None and info.nats_auth_dir:
        return Path(info.nats_auth_dir) / "creds" / "operator.creds"
    return None


def find_system(data_dir: Path | None = None) -> RunInfo:
    env_nats = os.environ.get("KUMKM_NATS_URL")
    if env_nats:
        return RunInfo(
            nats_url=env_nats,
            database_url=os.environ.get("KUMKM_DATABASE_URL", ""),
            auth_issuer=os.environ.get("KUMKM_AUTH_ISSUER"),
            auth_audience=os.environ.get("KUMKM_AUTH_AUDIENCE", "kumkm"),
            nats_auth_dir=os.environ.get("KUMKM_NATS_AUTH_DIR"),
        )
    directory = data_dir or DEFAULT_DATA_DIR
    if not (directory / "run.json").exists():
        hint = f"set KUMKM_NATS_URL, or start one with `kumkm up --data-dir {directory}`"
        raise SystemNotFoundError(f"no running system found: {hint}")
    return RunInfo.read(directory)


def running_system(data_dir: Path) -> RunInfo:
    """``find_system`` for a command that needs the running system: without one, exit 3 saying why."""
    try:
        return find_system(data_dir)
    except SystemNotFoundError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]{exc}[/]")
        raise typer.Exit(3) from None
