"""The helper that reads docker-compose.yml for the compose-wiring tests (tests/integration/deploy)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support.compose_env import (
    ComposeError,
    ComposeService,
    compose_hosts_in,
    interpolate,
    load_compose,
    localize,
    read_env_file,
    start_order,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit

APPS = ("loans", "catalog", "notifications")
ENDPOINTS = {
    ("nats", 4222): ("127.0.0.1", 14222),
    ("postgres", 5432): ("127.0.0.1", 15432),
    ("mailpit", 1025): ("127.0.0.1", 11025),
    ("keycloak", 8080): ("127.0.0.1", 18180),
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("$$HOME and $$$$", "$HOME and $$"),
        ("${SET}", "value"),
        ("$SET/x", "value/x"),
        ("${UNSET}", ""),
        ("${UNSET:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${EMPTY-fallback}", ""),
        ("${UNSET-fallback}", "fallback"),
        ("${SET:-fallback}", "value"),
        ("${SET:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("postgresql://u:${SET:?need it}@h:1/d", "postgresql://u:value@h:1/d"),
    ],
)
def test_interpolation_follows_compose(text: str, expected: str) -> None:
    assert interpolate(text, {"SET": "value", "EMPTY": ""}) == expected


@pytest.mark.parametrize("text", ["${UNSET:?set it in .env}", "${EMPTY:?set it}", "${UNSET?x}"])
def test_required_variables_fail_like_compose(text: str) -> None:
    with pytest.raises(ComposeError, match="required variable"):
        interpolate(text, {"EMPTY": ""})


def test_env_file_parsing(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# comment\n\nA=1\nB=\"two words # kept\"\nC=three # dropped\nexport D='4'\nE=\n")
    assert read_env_file(env) == {"A": "1", "B": "two words # kept", "C": "three", "D": "4", "E": ""}
    env.write_text("not a pair\n")
    with pytest.raises(ComposeError):
        read_env_file(env)


def test_load_compose_with_the_example_env() -> None:
    services = load_compose()
    loans = services["loans"]
    assert loans.command == ("kumkm-loans", "serve")
    assert (
        loans.environment["KUMKM_DATABASE_URL"].split(":")[2].startswith(read_env_file()["LOANS_DB_PASSWORD"])
    )
    assert loans.environment["KUMKM_NATS_CREDS"] == "/run/secrets/nats-loans"
    assert loans.built_here
    assert not services["nats"].built_here
    assert services["provision"].one_shot
    assert not loans.one_shot


def test_load_compose_refuses_a_missing_secret() -> None:
    env = read_env_file()
    del env["LOANS_DB_PASSWORD"]
    with pytest.raises(ComposeError, match="LOANS_DB_PASSWORD"):
        load_compose(env)


def test_start_order_respects_depends_on() -> None:
    services = load_compose()
    order = start_order(services)
    for name in order:
        for dependency in services[name].depends_on:
            assert order.index(dependency) < order.index(name), (dependency, name)
    assert "prometheus" not in order
    assert "prometheus" in start_order(services, profiles=["observability"])


def test_start_order_detects_cycles_and_unknown_services() -> None:
    a = ComposeService("a", (), {}, depends_on={"b": "service_started"})
    b = ComposeService("b", (), {}, depends_on={"a": "service_started"})
    with pytest.raises(ComposeError, match="cycle"):
        start_order({"a": a, "b": b})
    with pytest.raises(ComposeError, match="unknown"):
        start_order({"a": a})


@pytest.mark.parametrize("name", [*APPS, *(f"{a}-migrate" for a in APPS), "provision"])
def test_localize_maps_every_compose_host_to_local_endpoints(name: str) -> None:
    services = load_compose()
    local = localize(services[name], ENDPOINTS, http_port=18080)
    assert compose_hosts_in(local, services) == {}
    env = local.environment
    assert env["KUMKM_NATS_URL"] == "nats://127.0.0.1:14222"
    if "KUMKM_AUTH_ISSUER" in env:
        assert env["KUMKM_AUTH_ISSUER"] == "http://127.0.0.1:18180/realms/kumkm"
    if "KUMKM_DATABASE_URL" in env:
        user = env["KUMKM_NATS_CREDS"].removeprefix("/run/secrets/nats-")
        password = services[name].environment["KUMKM_DATABASE_URL"].split(":")[2].split("@")[0]
        assert env["KUMKM_DATABASE_URL"] == f"postgresql://{user}:{password}@127.0.0.1:15432/kumkm"
    if "KUMKM_HTTP_PORT" in env:
        assert (env["KUMKM_HTTP_HOST"], env["KUMKM_HTTP_PORT"]) == ("127.0.0.1", "18080")


def test_localize_maps_host_and_port_pairs_and_url_lists() -> None:
    service = ComposeService(
        "x",
        (),
        {
            "KUMKM_NOTIFICATIONS_SMTP_HOST": "mailpit",
            "KUMKM_NOTIFICATIONS_SMTP_PORT": "1025",
            "KUMKM_NATS_URL": "nats://nats:4222,nats://other:4222",
            "UNRELATED": "mailpit is a name",
        },
    )
    env = localize(service, ENDPOINTS).environment
    assert env["KUMKM_NOTIFICATIONS_SMTP_HOST"] == "127.0.0.1"
    assert env["KUMKM_NOTIFICATIONS_SMTP_PORT"] == "11025"
    assert env["KUMKM_NATS_URL"] == "nats://127.0.0.1:14222,nats://other:4222"
    assert env["UNRELATED"] == "mailpit is a name"
    leftover = compose_hosts_in(localize(service, ENDPOINTS), ["other"])
    assert leftover == {"KUMKM_NATS_URL": env["KUMKM_NATS_URL"]}
