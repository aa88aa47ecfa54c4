"""``python -m kumkm_notifications serve|migrate|asyncapi`` (also the ``kumkm-notifications`` script)."""

from kumkm_notifications.app import build
from kumkm_shared import service_cli

app = service_cli(build)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
