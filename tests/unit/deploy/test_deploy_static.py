"""Static checks of deploy/, docker-compose.yml and .env.example with offline tools from PyPI.

check-jsonschema (the Compose specification), hadolint, kubernetes-validate and ``nats-server -t``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from kumkm_shared.messaging.topology import CONSUMER_DECLS
from kumkm_shared.natsauth import AuthDir
from kumkm_shared.natsauth.permissions import PLATFORM_USERS, SERVICE_CONSUMERS
from tests.support.compose_env import load_compose, read_env_file

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
NATS_CONF = DEPLOY / "nats" / "nats-server.conf"
K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.30.0"  # the oldest version the manifests support (preStop sleep)
SERVICES = ("loans", "catalog", "notifications", "monitoring")  # each with its NATS user and schema
CONSOLE = "console"  # HTTP only: no NATS user, no database
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$")


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed next to {sys.executable}: run `make install`")
    return str(path)


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, env=env, cwd=ROOT, timeout=120)


def _k8s_documents() -> list[tuple[Path, dict[str, object]]]:
    docs = []
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name in {"values.yaml", "kustomization.yaml"}:
            continue
        docs += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


# ---- docker-compose.yml -----------------------------------------------------------------------------------


def test_compose_file_validates_against_the_compose_specification() -> None:
    result = _run(_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_has_no_literal_secrets() -> None:
    # Every secret-looking variable is a required ${VAR:?...} reference to .env, without a default.
    text = COMPOSE.read_text()
    raw = yaml.safe_load(text)
    offenders = []
    for name, service in raw["services"].items():
        for key, raw_value in (service.get("environment") or {}).items():
            value = str(raw_value)
            if SECRET_KEY.search(key) and not re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", value):
                offenders.append(f"{name}.{key}={value}")
            if "://" in value and "@" in value:
                userinfo = value.split("://", 1)[1].split("@", 1)[0]
                if ":" in userinfo and not re.fullmatch(r"[a-z_]+:\$\{[A-Z0-9_]+:\?[^}]*\}", userinfo):
                    offenders.append(f"{name}.{key}: password in URL is not a required reference")
    assert offenders == []
    code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in code if "change-me" in line]
    for default in re.findall(r"\$\{([A-Z0-9_]+):?-[^}]*\}", text):
        assert not SECRET_KEY.search(default), f"{default} has a default value in docker-compose.yml"


def test_env_example_documents_every_variable_compose_needs() -> None:
    documented = read_env_file()
    referenced = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    assert referenced - documented.keys() == set()
    # and only placeholders for secrets
    for key, value in documented.items():
        if SECRET_KEY.search(key):
            assert value.startswith("change-me"), f"{key} in .env.example must be a change-me placeholder"


def test_compose_resolves_with_the_example_env() -> None:
    services = load_compose()
    assert {"nats", "postgres", "provision", "mailpit", "prometheus", *SERVICES, CONSOLE} <= services.keys()
    for service in SERVICES:
        app = services[service]
        assert app.command == (f"kumkm-{service}", "serve")
        assert app.build_args == {"SERVICE": service}
        assert app.healthcheck is not None
        assert app.restart == "unless-stopped"
        assert app.depends_on["nats"] == "service_healthy"
        assert app.depends_on["postgres"] == "service_healthy"
        assert app.depends_on["provision"] == "service_completed_successfully"
        assert app.depends_on[f"{service}-migrate"] == "service_completed_successfully"
        migrate = services[f"{service}-migrate"]
        assert migrate.command == (f"kumkm-{service}", "migrate")
        assert migrate.environment == app.environment
        env = app.environment
        assert env["KUMKM_NATS_CREDS"] == f"/run/secrets/nats-{service}"
        assert env["KUMKM_NATS_INBOX_PREFIX"] == f"_INBOX_{service}"
        assert "KUMKM_NATS_PASSWORD" not in env
        assert env["KUMKM_DATABASE_URL"].startswith(f"postgresql://{service}:")
        assert env["KUMKM_DATABASE_URL"].endswith("@postgres:5432/kumkm")
        assert env["KUMKM_HTTP_HOST"] == "0.0.0.0"  # noqa: S104 - inside the container
        assert env["KUMKM_HTTP_PORT"] == "8080"
        assert env["KUMKM_LOG_FORMAT"] == "json"
    assert services["provision"].command == ("kumkm", "provision")
    assert services["provision"].environment["KUMKM_NATS_CREDS"] == "/run/secrets/nats-provision"
    assert "KUMKM_DATABASE_URL" not in services["provision"].environment
    assert services["prometheus"].profiles == ("observability",)
    smtp = services["notifications"].environment
    assert smtp["KUMKM_NOTIFICATIONS_SMTP_HOST"] == "mailpit"
    assert smtp["KUMKM_NOTIFICATIONS_SMTP_PORT"] == "1025"


def test_compose_runs_the_console_with_http_only_and_its_session_key_from_env() -> None:
    services = load_compose()
    console = services[CONSOLE]
    assert console.command == ("kumkm-console", "serve")
    assert console.build_args == {"SERVICE": CONSOLE}
    assert console.restart == "unless-stopped"
    env = console.environment
    assert not [key for key in env if key.startswith(("KUMKM_NATS_", "KUMKM_DATABASE_"))], env
    assert env["KUMKM_CONSOLE_HOST"] == "0.0.0.0"  # noqa: S104 - inside the container
    assert env["KUMKM_CONSOLE_PORT"] == env["KUMKM_HTTP_PORT"] == "8080"
    assert env["KUMKM_CONSOLE_ISSUER"] == services["loans"].environment["KUMKM_AUTH_ISSUER"]
    assert env["KUMKM_CONSOLE_AUDIENCE"] == services["loans"].environment["KUMKM_AUTH_AUDIENCE"]
    assert env["KUMKM_CONSOLE_CLIENT_ID"] == "kumkm-console"
    assert env["KUMKM_CONSOLE_PUBLIC_URL"] == "http://127.0.0.1:8000"
    for service in SERVICES:
        assert env[f"KUMKM_CONSOLE_{service.upper()}_URL"] == f"http://{service}:8080"
        assert console.depends_on[service] == "service_healthy"
    assert console.depends_on["keycloak"] == "service_healthy"
    assert console.healthcheck is not None
    assert "/healthz" in " ".join(console.healthcheck)
    raw = yaml.safe_load(COMPOSE.read_text())["services"][CONSOLE]
    assert raw["environment"]["KUMKM_CONSOLE_SESSION_SECRET"].startswith("${CONSOLE_SESSION_SECRET:?")
    assert "127.0.0.1:8000:8080" in raw["ports"]
    assert raw["read_only"] is True


def test_compose_gives_monitoring_its_window_and_own_schema() -> None:
    env = load_compose()["monitoring"].environment
    assert env["KUMKM_MONITORING_WINDOW_DAYS"] == "90"
    assert env["KUMKM_DATABASE_URL"].startswith("postgresql://monitoring:")


def test_compose_sets_resource_limits_and_restart_policies() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    for name, service in raw["services"].items():
        assert service["deploy"]["resources"]["limits"]["memory"], name
        assert "restart" in service, name


def test_each_container_gets_only_its_own_nats_creds() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    secrets = raw["secrets"]
    assert set(secrets) == {f"nats-{user}" for user in (*SERVICES, "provision")}
    for name, secret in secrets.items():
        assert (
            secret["file"]
            == "${NATS_AUTH_DIR:-./deploy/nats/auth}/creds/" + name.removeprefix("nats-") + ".creds"
        )
    for name, service in raw["services"].items():
        user = name.removesuffix("-migrate")
        expected = [f"nats-{user}"] if user in {*SERVICES, "provision"} else None  # the console: none
        assert service.get("secrets") == expected, name
    nats = raw["services"]["nats"]
    assert "environment" not in nats  # no password any more: operator mode
    assert "${NATS_AUTH_DIR:-./deploy/nats/auth}/server:/etc/nats/auth:ro" in nats["volumes"]


def test_prometheus_scrapes_every_service() -> None:  # the console has no /metrics
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert {f"{service}:8080" for service in SERVICES} <= targets


# ---- Dockerfile --------------------------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    result = _run(_tool("hadolint"), str(DEPLOY / "Dockerfile"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_installs_only_shared_and_one_service_and_runs_as_non_root() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert 'pip install --no-cache-dir ./shared "./services/${SERVICE}"' in text
    assert "COPY services/${SERVICE}/ services/${SERVICE}/" in text
    assert not re.search(r"^COPY (\.|services/) ", text, re.MULTILINE), "the whole repository is copied"
    assert re.search(r"^USER 10001", text, re.MULTILINE)
    assert "HEALTHCHECK" in text
    assert "/health/ready" in text
    assert len(re.findall(r"^FROM ", text, re.MULTILINE)) >= 2


def test_dockerignore_keeps_secrets_and_the_venv_out_of_the_build_context() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("**")] == "**"
    assert {"!shared", "!services", "**/.env"} <= set(lines)


# ---- NATS --------------------------------------------------------------------------------------------------


def _config_beside_auth(tmp_path: Path) -> Path:
    """deploy/nats/nats-server.conf next to auth/ (a fresh `kumkm nats init`), as the container sees them."""
    auth = AuthDir.init(tmp_path / "nats-auth")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "auth").symlink_to(auth.server_dir)
    config = tmp_path / "conf" / "nats-server.conf"
    config.write_text(NATS_CONF.read_text())
    return config


def test_nats_config_is_valid_in_operator_mode(tmp_path: Path) -> None:
    result = _run(_tool("nats-server"), "-c", str(_config_beside_auth(tmp_path)), "-t")
    assert result.returncode == 0, result.stdout + result.stderr


def test_nats_config_refuses_to_start_without_the_auth_directory(tmp_path: Path) -> None:
    config = _config_beside_auth(tmp_path)
    (config.parent / "auth").unlink()
    result = _run(_tool("nats-server"), "-c", str(config), "-t")
    assert result.returncode != 0
    assert "auth.conf" in result.stdout + result.stderr


def test_nats_config_uses_the_full_resolver_without_deletes_and_no_plain_users() -> None:
    text = NATS_CONF.read_text()
    assert re.search(r"^include \./auth/auth\.conf$", text, re.MULTILINE)
    resolver = re.search(r"^resolver \{(?P<body>[^}]*)\}", text, re.MULTILINE | re.DOTALL)
    assert resolver is not None
    assert re.search(r"^\s*type: full$", resolver["body"], re.MULTILINE)
    assert re.search(r"^\s*allow_delete: false$", resolver["body"], re.MULTILINE)
    assert not re.search(r"^\s*(accounts|authorization|users)\s*[:{]", text, re.MULTILINE)
    assert not (DEPLOY / "nats" / "accounts.conf").exists()


def test_nats_config_keeps_fsync_always() -> None:
    assert re.search(r"^\s*sync_interval:\s*always\s*$", NATS_CONF.read_text(), re.MULTILINE)
    values = yaml.safe_load((K8S / "nats" / "values.yaml").read_text())
    assert values["config"]["merge"]["jetstream"]["sync_interval"] == "always"


def test_nats_helm_values_run_a_three_node_jetstream_cluster_in_operator_mode() -> None:
    values = yaml.safe_load((K8S / "nats" / "values.yaml").read_text())
    config = values["config"]
    assert config["cluster"] == {"enabled": True, "replicas": 3}
    assert config["jetstream"]["enabled"] is True
    assert config["jetstream"]["fileStore"]["enabled"] is True
    assert "accounts" not in config["merge"]
    assert config["merge"]["$include"] == "./auth/auth.conf"
    resolver = config["resolver"]
    assert resolver["enabled"] is True
    assert resolver["merge"]["allow_delete"] is False
    assert resolver["pvc"]["enabled"] is True
    (mount,) = [p["value"] for p in values["container"]["patch"] if p["value"]["name"] == "nats-auth"]
    assert mount["mountPath"] == "/etc/nats-config/auth"
    (volume,) = [p["value"] for p in values["podTemplate"]["patch"] if p["value"]["name"] == "nats-auth"]
    assert volume["secret"]["secretName"] == "kumkm-nats-auth"


# ---- Kubernetes --------------------------------------------------------------------------------------------


def test_kubernetes_manifests_validate_against_the_api_schemas() -> None:
    checked, unknown = 0, []
    for path, doc in _k8s_documents():
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            checked += 1
        except kubernetes_validate.SchemaNotFoundError:
            unknown.append(f"{path.name}:{doc['kind']}")
    assert checked >= 12
    assert unknown == ["cluster.yaml:Cluster"]  # CloudNativePG's CRD: checked by the tests below


def test_kustomization_lists_every_manifest_but_the_example_secrets() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = {K8S / r for r in kustomization["resources"]}
    files = {p for p, _ in _k8s_documents() if p.name != "secrets.example.yaml"}
    assert listed == files


def test_cloudnativepg_cluster_has_the_database_roles_and_schemas() -> None:
    cluster = yaml.safe_load((K8S / "postgres" / "cluster.yaml").read_text())
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    assert cluster["kind"] == "Cluster"
    spec = cluster["spec"]
    assert spec["instances"] >= 3
    assert spec["enableSuperuserAccess"] is False
    # Synchronous replication to one standby (docs/rules/database.md), through one API only.
    synchronous = spec["postgresql"]["synchronous"]
    assert synchronous["number"] >= 1
    assert synchronous["method"] in {"any", "first"}
    assert synchronous["dataDurability"] in {"required", "preferred"}
    assert "minSyncReplicas" not in spec
    assert "maxSyncReplicas" not in spec
    assert spec["bootstrap"]["initdb"]["database"] == "kumkm"
    sql = spec["bootstrap"]["initdb"]["postInitApplicationSQL"]
    assert all(isinstance(statement, str) and statement.strip() for statement in sql)
    roles = {r["name"]: r for r in spec["managed"]["roles"]}
    assert set(roles) == set(SERVICES)
    for service in SERVICES:
        assert f"CREATE SCHEMA IF NOT EXISTS {service} AUTHORIZATION {service}" in sql
        assert f"ALTER ROLE {service} SET search_path TO {service}" in sql
        role = roles[service]
        assert role["login"] is True
        assert role["ensure"] == "present"
        flags = ("superuser", "createdb", "createrole", "replication", "bypassrls")
        assert not any(role[flag] for flag in flags)
        assert role["passwordSecret"]["name"] == f"kumkm-{service}-db"


def test_each_service_deployment_is_replicated_probed_and_protected() -> None:
    docs = {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in _k8s_documents()}
    for service in SERVICES:
        name = f"kumkm-{service}"
        deployment = docs[("Deployment", name)]
        assert deployment["spec"]["replicas"] == 2  # what the cluster fault suite runs (make chaos-cluster)
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["command"] == [f"kumkm-{service}", "serve"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["securityContext"]["runAsNonRoot"] is True
        (migrate,) = pod["initContainers"]
        assert migrate["command"] == [f"kumkm-{service}", "migrate"]
        env = {e["name"]: e for e in container["env"]}
        assert env["KUMKM_NATS_CREDS"]["value"] == "/etc/kumkm/nats/nats.creds"
        assert env["KUMKM_NATS_INBOX_PREFIX"]["value"] == f"_INBOX_{service}"
        assert "KUMKM_NATS_PASSWORD" not in env
        (creds,) = [v for v in pod["volumes"] if v["name"] == "nats-creds"]
        assert creds["secret"]["secretName"] == "kumkm-nats-creds"
        assert creds["secret"]["items"] == [{"key": f"{service}.creds", "path": "nats.creds"}]
        assert pod["securityContext"]["fsGroup"] == 10001
        assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == f"kumkm-{service}-db"
        assert env["KUMKM_DATABASE_URL"]["value"].startswith(f"postgresql://{service}:$(DB_PASSWORD)@")
        literal = [e["name"] for e in env.values() if "PASSWORD" in e["name"] and "value" in e]
        assert literal == []
        assert docs[("PodDisruptionBudget", name)]["spec"]["maxUnavailable"] == 1
        assert docs[("Service", name)]["spec"]["selector"] == {"app.kubernetes.io/name": name}


def test_the_console_deployment_has_no_bus_or_database_and_its_secrets_from_a_secret() -> None:
    docs = {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in _k8s_documents()}
    deployment = docs[("Deployment", "kumkm-console")]
    assert deployment["spec"]["replicas"] == 1  # sessions in memory: see services/console.yaml
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["kumkm-console", "serve"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz", probe
    assert container["resources"]["limits"]["memory"]
    assert container["resources"]["requests"]["cpu"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert "initContainers" not in pod
    assert not [v for v in pod["volumes"] if v["name"] == "nats-creds"]
    env = {e["name"]: e for e in container["env"]}
    assert not [name for name in env if name.startswith(("KUMKM_NATS_", "KUMKM_DATABASE_", "DB_"))]
    session = env["KUMKM_CONSOLE_SESSION_SECRET"]["valueFrom"]["secretKeyRef"]
    assert session == {"name": "kumkm-console", "key": "session-secret"}
    client = env["KUMKM_CONSOLE_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]
    assert client == {"name": "kumkm-console", "key": "oidc-client-secret", "optional": True}
    issuer = env["KUMKM_CONSOLE_ISSUER"]["valueFrom"]["configMapKeyRef"]
    assert issuer == {"name": "kumkm-config", "key": "KUMKM_AUTH_ISSUER"}
    literal = [e["name"] for e in env.values() if "SECRET" in e["name"] and "value" in e]
    assert literal == []
    config = docs[("ConfigMap", "kumkm-console-config")]["data"]
    for service in SERVICES:
        assert config[f"KUMKM_CONSOLE_{service.upper()}_URL"] == f"http://kumkm-{service}"
        assert docs[("Service", f"kumkm-{service}")]["spec"]["ports"][0]["port"] == 80
    assert config["KUMKM_CONSOLE_PUBLIC_URL"].startswith("https://")
    assert config["KUMKM_CONSOLE_SECURE_COOKIES"] == "true"
    selector = docs[("Service", "kumkm-console")]["spec"]["selector"]
    assert selector == {"app.kubernetes.io/name": "kumkm-console"}
    example = {
        doc["metadata"]["name"]: doc
        for doc in yaml.safe_load_all((K8S / "secrets.example.yaml").read_text())
        if doc
    }
    assert set(example["kumkm-console"]["stringData"]) == {"session-secret", "oidc-client-secret"}
    assert {f"{service}.creds" for service in SERVICES} <= set(example["kumkm-nats-creds"]["stringData"])
    assert example["kumkm-monitoring-db"]["stringData"]["username"] == "monitoring"


def test_monitoring_reads_its_window_from_its_config_map() -> None:
    docs = {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in _k8s_documents()}
    pod = docs[("Deployment", "kumkm-monitoring")]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    refs = [ref["configMapRef"]["name"] for ref in container["envFrom"]]
    assert refs == ["kumkm-config", "kumkm-monitoring-config"]
    config = docs[("ConfigMap", "kumkm-monitoring-config")]["data"]
    assert config["KUMKM_MONITORING_WINDOW_DAYS"] == "90"


def test_provision_job_creates_replicated_streams() -> None:
    docs = {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in _k8s_documents()}
    config = docs[("ConfigMap", "kumkm-config")]["data"]
    assert config["KUMKM_STREAM_REPLICAS"] == "3"
    job = docs[("Job", "kumkm-provision")]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["kumkm", "provision"]
    # The count reaches the Job through the ConfigMap, and nothing in the Job overrides it.
    assert {"configMapRef": {"name": "kumkm-config"}} in container["envFrom"]
    assert "KUMKM_STREAM_REPLICAS" not in {env["name"] for env in container.get("env", [])}


def test_the_services_in_kubernetes_verify_tokens_of_the_kumkm_realm() -> None:
    docs = {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in _k8s_documents()}
    config = docs[("ConfigMap", "kumkm-config")]["data"]
    assert config["KUMKM_AUTH_ISSUER"].startswith("https://")  # tokens over TLS only in a cluster
    assert config["KUMKM_AUTH_ISSUER"].endswith("/realms/kumkm")
    assert config["KUMKM_AUTH_AUDIENCE"] == "kumkm"


def test_every_declared_consumer_belongs_to_a_service_user() -> None:
    # The NATS permissions are written per (stream, consumer) pair; a new consumer needs new rules.
    assert {(d.service, d.stream, d.name) for d in CONSUMER_DECLS} == {
        (service, stream, name) for service, pairs in SERVICE_CONSUMERS.items() for stream, name in pairs
    }
    for decl in CONSUMER_DECLS:
        allow = PLATFORM_USERS[decl.service][1]["pub"]["allow"]
        assert f"$JS.API.CONSUMER.MSG.NEXT.{decl.stream}.{decl.name}" in allow, decl.name
        assert f"$JS.ACK.{decl.stream}.{decl.name}.>" in allow, decl.name
