"""``python -m kumkm_console`` (also ``kumkm-console``): serve the console (settings ``KUMKM_CONSOLE_*``)."""

from __future__ import annotations

import uvicorn

from kumkm_console.app import build
from kumkm_console.settings import ConsoleSettings


def main() -> None:
    settings = ConsoleSettings()
    uvicorn.run(build(settings), host=settings.host, port=settings.port, log_level="info")


if __name__ == "__main__":
    main()
