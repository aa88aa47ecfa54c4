"""bench/slow_disk.py: the preloaded shim really slows fsync, so a --slow-fsync run measures a slower disk."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bench import slow_disk
from bench.system import fsync_rate

if TYPE_CHECKING:
    from pathlib import Path


def test_the_shim_caps_the_fsync_rate_at_its_delay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    library = slow_disk.build(tmp_path)
    for name, value in slow_disk.environment(library, 5.0).items():
        monkeypatch.setenv(name, value)
    rate, by = fsync_rate(tmp_path)
    assert by == "pg_test_fsync", "the bundled Postgres ships pg_test_fsync (pip install pgserver)"
    # 5 ms before each call: at most 200 calls a second, whatever the disk
    assert 0 < rate <= 200, rate


def test_without_a_compiler_the_error_names_the_install_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slow_disk.shutil, "which", lambda _name: None)
    with pytest.raises(slow_disk.SlowDiskError, match="apt-get install -y gcc"):
        slow_disk.build(tmp_path)
