from tests.integration.deploy.conftest import compose_services, deploy_env

__all__ = ["compose_services", "deploy_env"]
