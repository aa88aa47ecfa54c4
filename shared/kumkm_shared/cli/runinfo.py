"""How every ``kumkm`` command finds the running system: environment variables, then ``run.json``."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

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

    def write(self, data_dir: Path) -> Path:
        path = data_dir / "run.json"
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, data_dir: Path) -> RunInfo:
        path = data_dir / "run.json"
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def nats_credentials() -> tuple[str | None, str | None]:
    return os.environ.get("KUMKM_NATS_USER"), os.environ.get("KUMKM_NATS_PASSWORD")


def find_system(data_dir: Path | None = None) -> RunInfo:
    env_nats = os.environ.get("KUMKM_NATS_URL")
    if env_nats:
        return RunInfo(nats_url=env_nats, database_url=os.environ.get("KUMKM_DATABASE_URL", ""))
    directory = data_dir or DEFAULT_DATA_DIR
    try:
        return RunInfo.read(directory)
    except FileNotFoundError:
        hint = f"set KUMKM_NATS_URL, or start one with `kumkm up --data-dir {directory}`"
        raise SystemNotFoundError(f"no running system found: {hint}") from None
