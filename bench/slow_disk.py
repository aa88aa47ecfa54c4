"""A slower disk for Postgres, on a machine whose disk is fast: ``fsync`` and ``fdatasync`` wait first.

Group commit pays off where a commit costs a slow fsync: network disks, cloud volumes, an old SSD. A
benchmark run on a fast local disk cannot show that, so ``python -m bench.system --slow-fsync MS`` compiles
this small shim (gcc or cc) and preloads it (``LD_PRELOAD``) into every process the benchmark starts: each
``fsync`` and ``fdatasync`` call sleeps ``MS`` milliseconds, then does the real call. Postgres syncs its WAL
with ``fdatasync`` on Linux, and the bundled ``pg_test_fsync`` (which ``bench.system`` prints first) shows the
rate the shim gives. nats-server is a Go binary that makes its system calls directly: the shim does not touch
it, so only Postgres' commits are slowed. A benchmark device, never for a deployment.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

DELAY_ENV = "KUMKM_SLOW_FSYNC_US"

SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static long delay_ns = -1;

static void wait_first(void) {
    if (delay_ns < 0) {
        const char *text = getenv("@DELAY_ENV@");
        delay_ns = text ? atol(text) * 1000L : 0;
    }
    if (delay_ns > 0) {
        struct timespec pause = {delay_ns / 1000000000L, delay_ns % 1000000000L};
        nanosleep(&pause, NULL);
    }
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    wait_first();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    wait_first();
    return real(fd);
}
"""


class SlowDiskError(RuntimeError):
    pass


def build(directory: Path) -> Path:
    """Compile the shim into ``directory``; a missing compiler names its install step."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise SlowDiskError(
            "--slow-fsync compiles a small C shim: install a compiler (apt-get install -y gcc)"
        )
    source, library = directory / "slow_fsync.c", directory / "slow_fsync.so"
    source.write_text(SOURCE.replace("@DELAY_ENV@", DELAY_ENV))  # one name for the variable, here and in C
    done = subprocess.run(
        [compiler, "-O2", "-shared", "-fPIC", "-o", str(library), str(source), "-ldl"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SlowDiskError(f"compiling the fsync shim failed: {done.stderr.strip()[:500]}")
    return library


def environment(library: Path, delay_ms: float) -> dict[str, str]:
    """The variables that slow every later child process's fsync by ``delay_ms``."""
    return {"LD_PRELOAD": str(library), DELAY_ENV: str(round(delay_ms * 1000))}
