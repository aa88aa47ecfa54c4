"""``python -m kumkm_loans serve|migrate|asyncapi`` (also the ``kumkm-loans`` console script)."""

from kumkm_loans.app import build
from kumkm_shared import service_cli

app = service_cli(build)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
