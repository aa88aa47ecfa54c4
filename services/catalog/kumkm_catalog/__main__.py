"""``python -m kumkm_catalog serve|migrate|asyncapi`` (also the ``kumkm-catalog`` console script)."""

from kumkm_catalog.app import build
from kumkm_shared import service_cli

app = service_cli(build)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
