"""docker-compose.yml's one-shot `provision` service, run as compose runs it but against local NATS.

The command and environment come from docker-compose.yml (through compose_env), with the compose host
names mapped to the embedded server started with deploy/nats. The full flow (migrations, the three
services, a cross-service flow) joins this module once the services' commands exist.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import nats
import pytest

from kumkm_shared.messaging.topology import CONSUMER_DECLS, STREAM_DECLS
from tests.integration.deploy.compose_env import compose_hosts_in, localize

if TYPE_CHECKING:
    from tests.integration.deploy.compose_env import ComposeService
    from tests.integration.deploy.conftest import DeployNats

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def _run(service: ComposeService) -> subprocess.CompletedProcess[str]:
    program, *args = service.command
    env = {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": os.environ.get("HOME", "")}
    env |= service.environment
    return subprocess.run(
        [str(BIN / program), *args], env=env, capture_output=True, text=True, check=False, timeout=120
    )


@pytest.mark.parametrize("deploy_nats", ["compose"], indirect=True)
async def test_provision_one_shot_runs_with_its_compose_environment(
    deploy_nats: DeployNats, compose_services: dict[str, ComposeService]
) -> None:
    host, port = deploy_nats.url.removeprefix("nats://").split(":")
    provision = localize(compose_services["provision"], {("nats", 4222): (host, int(port))})
    assert compose_hosts_in(provision, compose_services) == {}
    result = _run(provision)
    assert result.returncode == 0, result.stdout + result.stderr
    nc = await nats.connect(deploy_nats.url, user="operator", password=deploy_nats.passwords["operator"])
    try:
        js = nc.jetstream()
        for stream in STREAM_DECLS:
            info = await js.stream_info(stream.name)
            assert info.config.num_replicas == 1
        for decl in CONSUMER_DECLS:
            await js.consumer_info(decl.stream, decl.name)
    finally:
        await nc.close()
