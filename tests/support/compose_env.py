"""docker-compose.yml read the way `docker compose` reads it, for running its services without Docker.

`load_compose` resolves YAML anchors and merge keys, interpolates `${VAR}` references from an env mapping
(`.env.example` values, or generated test passwords) and returns, per compose service, its command and
environment. `localize` then rewrites the compose host names (`nats:4222`, `postgres:5432`, `mailpit`
with its port) to local endpoints, and gives the service an HTTP port of its own, so that a test can run
the same command with the same variables against embedded servers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
LOCALHOST = "127.0.0.1"

# $$ | ${...} | $NAME
_REFERENCE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(
    r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?$", re.DOTALL
)
# scheme://[userinfo@]host:port
_URL_AUTHORITY = re.compile(
    r"(?P<prefix>[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/\s,]*@)?)(?P<host>[A-Za-z0-9_.-]+):(?P<port>\d+)"
)


class ComposeError(ValueError):
    """The compose file or its environment cannot be resolved the way `docker compose` would."""


@dataclass(frozen=True)
class ComposeService:
    name: str
    command: tuple[str, ...]
    environment: dict[str, str]
    depends_on: dict[str, str] = field(default_factory=dict)
    image: str | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    profiles: tuple[str, ...] = ()
    restart: str | None = None
    healthcheck: tuple[str, ...] | None = None

    @property
    def one_shot(self) -> bool:
        """Runs to completion (others wait for `service_completed_successfully`)."""
        return self.restart in {None, "no"} and self.healthcheck is None

    @property
    def built_here(self) -> bool:
        """Built from deploy/Dockerfile: one of ours (as opposed to nats, postgres, mailpit, ...)."""
        return "SERVICE" in self.build_args


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """A `.env` file as compose reads it: KEY=VALUE lines, # comments, optional single or double quotes."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.removeprefix("export ").strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ComposeError(f"{path}:{number}: not a KEY=VALUE line: {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        else:
            value = re.sub(r"\s+#.*$", "", value)
        values[key] = value
    return values


def interpolate(text: str, env: Mapping[str, str], *, where: str = "") -> str:
    """Compose variable interpolation: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error},
    ${VAR?error}, ${VAR:+alternative}, ${VAR+alternative}. Nested references in defaults are not supported."""

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        if match.group("named"):
            return env.get(match.group("named"), "")
        braced = _BRACED.match(match.group("braced"))
        if braced is None:
            raise ComposeError(f"{where}: invalid interpolation {match.group(0)!r}")
        name, op, arg = braced.group("name"), braced.group("op"), braced.group("arg") or ""
        value = env.get(name)
        present, non_empty = value is not None, bool(value)
        if op is None:
            return value or ""
        if op in {":-", "-"}:
            use_default = not non_empty if op == ":-" else not present
            return interpolate(arg, env, where=where) if use_default else str(value)
        if op in {":?", "?"}:
            missing = not non_empty if op == ":?" else not present
            if missing:
                raise ComposeError(f"{where}: required variable {name} is missing: {arg}")
            return str(value)
        # :+ and +
        use_alternative = non_empty if op == ":+" else present
        return interpolate(arg, env, where=where) if use_alternative else ""

    return _REFERENCE.sub(substitute, text)


def _interpolate_tree(node: Any, env: Mapping[str, str], where: str) -> Any:
    if isinstance(node, str):
        return interpolate(node, env, where=where)
    if isinstance(node, list):
        return [_interpolate_tree(item, env, f"{where}[{i}]") for i, item in enumerate(node)]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, env, f"{where}.{key}") for key, value in node.items()}
    return node


def _as_command(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        # Compose splits a string command shell-style; ours are lists, so keep this simple.
        return tuple(value.split())
    if isinstance(value, list) and all(isinstance(part, str | int | float) for part in value):
        return tuple(str(part) for part in value)
    raise ComposeError(f"{where}: unsupported command {value!r}")


def _as_environment(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return {
            str(k): "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        pairs = [str(item).partition("=") for item in value]
        return {key: val for key, _, val in pairs}
    raise ComposeError(f"{where}: unsupported environment {value!r}")


def _as_depends_on(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, list):
        return dict.fromkeys(value, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in value.items()}


def load_compose(
    env: Mapping[str, str] | None = None, compose_file: Path = COMPOSE_FILE
) -> dict[str, ComposeService]:
    """Every service of the compose file with variables interpolated from `env` (default: .env.example)."""
    env = read_env_file() if env is None else env
    document = yaml.safe_load(compose_file.read_text())
    if not isinstance(document, dict) or not isinstance(document.get("services"), dict):
        raise ComposeError(f"{compose_file}: no services")
    services: dict[str, ComposeService] = {}
    for name, raw in document["services"].items():
        spec = _interpolate_tree(raw, env, f"services.{name}")
        build = spec.get("build")
        build_args = build.get("args", {}) if isinstance(build, dict) else {}
        healthcheck = spec.get("healthcheck")
        test = None
        if isinstance(healthcheck, dict) and not healthcheck.get("disable"):
            test = _as_command(healthcheck.get("test"), f"services.{name}.healthcheck")
        services[name] = ComposeService(
            name=name,
            command=_as_command(spec.get("command"), f"services.{name}.command"),
            environment=_as_environment(spec.get("environment"), f"services.{name}.environment"),
            depends_on=_as_depends_on(spec.get("depends_on")),
            image=spec.get("image"),
            build_args={str(k): str(v) for k, v in (build_args or {}).items()},
            profiles=tuple(spec.get("profiles", ())),
            restart=spec.get("restart"),
            healthcheck=test,
        )
    return services


def start_order(services: Mapping[str, ComposeService], *, profiles: Iterable[str] = ()) -> list[str]:
    """Service names in an order that respects depends_on (what `docker compose up` starts first)."""
    active = {name for name, s in services.items() if not s.profiles or set(s.profiles) & set(profiles)}
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ComposeError(f"depends_on cycle through {name}")
        if name not in services:
            raise ComposeError(f"depends_on names an unknown service {name!r}")
        visiting.add(name)
        for dependency in services[name].depends_on:
            visit(dependency)
        visiting.discard(name)
        order.append(name)

    for name in sorted(active):
        visit(name)
    return order


def _localize_value(value: str, endpoints: Mapping[tuple[str, int], tuple[str, int]]) -> str:
    def authority(match: re.Match[str]) -> str:
        target = endpoints.get((match.group("host"), int(match.group("port"))))
        if target is None:
            return match.group(0)
        return f"{match.group('prefix')}{target[0]}:{target[1]}"

    return _URL_AUTHORITY.sub(authority, value)


def localize(
    service: ComposeService,
    endpoints: Mapping[tuple[str, int], tuple[str, int]],
    *,
    http_port: int | None = None,
    http_host: str | None = LOCALHOST,
) -> ComposeService:
    """The service with compose host names mapped to local endpoints.

    `endpoints` maps (compose host, container port) to (local host, local port), e.g.
    {("nats", 4222): ("127.0.0.1", 41222)}. Both URLs (scheme://[user@]host:port, comma-separated lists
    too) and HOST/PORT variable pairs (X_HOST=mailpit with X_PORT=1025) are rewritten. With `http_port`,
    the service listens on http_port instead of 8080, and on `http_host` instead of compose's 0.0.0.0
    (`http_host=None` keeps the compose value).
    """
    env = {key: _localize_value(value, endpoints) for key, value in service.environment.items()}
    for key, value in service.environment.items():
        if not key.endswith("_HOST"):
            continue
        port_key = key.removesuffix("_HOST") + "_PORT"
        port = service.environment.get(port_key, "")
        if port.isdigit() and (value, int(port)) in endpoints:
            host, local_port = endpoints[(value, int(port))]
            env[key], env[port_key] = host, str(local_port)
    if http_port is not None and "KUMKM_HTTP_PORT" in env:
        if http_host is not None:
            env["KUMKM_HTTP_HOST"] = http_host
        env["KUMKM_HTTP_PORT"] = str(http_port)
    return replace(service, environment=env)


def compose_hosts_in(service: ComposeService, hosts: Iterable[str]) -> dict[str, str]:
    """Variables of `service` that still name a compose host (to check that `localize` was complete)."""
    names = set(hosts)
    found = {}
    for key, value in service.environment.items():
        # Hosts in URL authorities, and bare X_HOST values.
        candidates = [m.group("host") for m in _URL_AUTHORITY.finditer(value)]
        if key.endswith("_HOST"):
            candidates.append(value)
        if names.intersection(candidates):
            found[key] = value
    return found
