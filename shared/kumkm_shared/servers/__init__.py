# Embedded NATS and Postgres for `kumkm up` and tests, and the choice between them, containers and given URLs.
from kumkm_shared.servers._process import ServerStartError, free_port
from kumkm_shared.servers.nats import ClusterBlock, EmbeddedNats, nats_server_binary
from kumkm_shared.servers.nats_cluster import ClusterError, EmbeddedNatsCluster
from kumkm_shared.servers.postgres import EmbeddedPostgres, InitScriptError, postgres_bin_dir
from kumkm_shared.servers.postgres_ha import (
    EmbeddedPostgresPair,
    PostgresNode,
    RejoinMethod,
    ReplicationError,
)
from kumkm_shared.servers.resolve import Mode, ServerHandle, Servers, docker_available, obtain_servers

__all__ = [
    "ClusterBlock",
    "ClusterError",
    "EmbeddedNats",
    "EmbeddedNatsCluster",
    "EmbeddedPostgres",
    "EmbeddedPostgresPair",
    "InitScriptError",
    "Mode",
    "PostgresNode",
    "RejoinMethod",
    "ReplicationError",
    "ServerHandle",
    "ServerStartError",
    "Servers",
    "docker_available",
    "free_port",
    "nats_server_binary",
    "obtain_servers",
    "postgres_bin_dir",
]
