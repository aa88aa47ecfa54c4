"""deploy/keycloak/kumkm-realm.json (what Keycloak imports and the embedded provider reads) matches what the
services expect: the issuer compose gives them, the audience, the claim names of their auth settings, the
role vocabulary, and the demo users, clients and service account."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from kumkm_shared.auth.roles import ALL_ROLES, INTEGRATOR
from kumkm_shared.servers.oidc import DEFAULT_REALM, PROVIDER_DIR
from kumkm_shared.service.settings import InfraSettings
from tests.support.compose_env import load_compose

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
REALM_FILE = ROOT / "deploy" / "keycloak" / "kumkm-realm.json"
TEST_REALM_FILE = ROOT / "tests" / "support" / "realm-test.json"
REALM: dict[str, Any] = json.loads(REALM_FILE.read_text())
TEST_REALM: dict[str, Any] = json.loads(TEST_REALM_FILE.read_text())
FIELDS = InfraSettings.model_fields
BEKASI = "Jawa Barat/Kota Bekasi"
# The brief's demo people: username -> (role, regions, organisation).
DEMO_PEOPLE = {
    "officer.bekasi": ("loans-officer", [BEKASI], "lpdb-kumkm"),
    "officer.surabaya": ("loans-officer", ["Jawa Timur/Kota Surabaya"], "lpdb-kumkm"),
    "supervisor.bekasi": ("loans-supervisor", [BEKASI], "lpdb-kumkm"),
    "supervisor.national": ("loans-supervisor", ["national"], "lpdb-kumkm"),
    "curator.bekasi": ("catalog-curator", [BEKASI], "lkpp"),
    "curator.national": ("catalog-curator", ["national"], "lkpp"),
    "curator.second": ("catalog-curator", ["national"], "lkpp"),
    "operator": ("operator", ["national"], "kumkm-ops"),
    "auditor": ("auditor", ["national"], "kemenkop-inspektorat"),
    "ministry": ("monitoring-viewer", ["national"], "kemenkop"),
    "city.bekasi": ("monitoring-viewer", [BEKASI], "pemkot-bekasi"),
}


def default(field: str) -> Any:
    return FIELDS[field].default


def users(realm: dict[str, Any] = REALM) -> dict[str, dict[str, Any]]:
    return {user["username"]: user for user in realm.get("users", [])}


def clients() -> dict[str, dict[str, Any]]:
    return {client["clientId"]: client for client in REALM["clients"]}


def scopes() -> dict[str, dict[str, Any]]:
    return {scope["name"]: scope for scope in REALM["clientScopes"]}


def mappers_of(client: dict[str, Any]) -> list[dict[str, Any]]:
    found = [m for name in client["defaultClientScopes"] for m in scopes()[name].get("protocolMappers", [])]
    return found + client.get("protocolMappers", [])


def access_claims(client: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """claim name -> mapper, for the mappers that put a claim into the client's access tokens."""
    claims: dict[str, dict[str, Any]] = {}
    for mapper in mappers_of(client):
        config = mapper["config"]
        name = "name" if mapper["protocolMapper"] == "oidc-full-name-mapper" else config.get("claim.name")
        if config.get("access.token.claim") == "true" and name:
            assert name not in claims, f"two mappers set {name} for {client['clientId']}"
            claims[name] = mapper
    return claims


def test_the_default_realm_is_the_deploy_file() -> None:
    assert DEFAULT_REALM == REALM_FILE
    assert REALM["realm"] == "kumkm"
    assert REALM["enabled"] is True


def test_compose_services_trust_this_realm_with_the_settings_audience() -> None:
    services = load_compose()
    keycloak = services["keycloak"]
    assert "--import-realm" in keycloak.command
    raw_volumes = " ".join(json.dumps(v) for v in _raw_service("keycloak")["volumes"])
    assert "./deploy/keycloak/kumkm-realm.json:/opt/keycloak/data/import/" in raw_volumes
    issuer = f"{keycloak.environment['KC_HOSTNAME']}/realms/{REALM['realm']}"
    apps = {"loans", "catalog", "notifications", "monitoring"}
    ours = [service for service in services.values() if service.built_here and service.name != "provision"]
    assert {service.name for service in ours} == apps | {f"{app}-migrate" for app in apps} | {"console"}
    console = services["console"]  # people sign in at the same issuer, for the same audience
    assert console.environment["KUMKM_CONSOLE_ISSUER"] == issuer
    assert console.environment["KUMKM_CONSOLE_AUDIENCE"] == default("auth_audience")
    assert console.depends_on["keycloak"] == "service_healthy"
    redirect = f"{console.environment['KUMKM_CONSOLE_PUBLIC_URL']}/*"
    assert redirect in clients()["kumkm-console"]["redirectUris"]
    for service in (s for s in ours if s.name != "console"):
        assert service.environment["KUMKM_AUTH_ISSUER"] == issuer, service.name
        assert service.environment["KUMKM_AUTH_AUDIENCE"] == default("auth_audience"), service.name
        if service.name in apps:
            assert service.depends_on["keycloak"] == "service_healthy", service.name


def test_images_name_no_registry_host() -> None:
    image = _raw_service("keycloak")["image"]
    assert re.fullmatch(r"keycloak/keycloak:26\.\d+(\.\d+)?", image), image


def _raw_service(name: str) -> dict[str, Any]:
    import yaml

    raw: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service: dict[str, Any] = raw["services"][name]
    return service


@pytest.mark.parametrize("client_id", ["kumkm-console", "kumkm-cli", "integrator-demo"])
def test_every_client_gets_the_audience_and_the_claims_the_services_read(client_id: str) -> None:
    client = clients()[client_id]
    audiences = [
        m["config"].get("included.custom.audience")
        for m in mappers_of(client)
        if m["protocolMapper"] == "oidc-audience-mapper" and m["config"].get("access.token.claim") == "true"
    ]
    assert audiences == [default("auth_audience")]
    claims = access_claims(client)
    roles = claims[default("auth_roles_claim")]
    assert roles["protocolMapper"] == "oidc-usermodel-realm-role-mapper"
    assert roles["config"]["multivalued"] == "true"
    regions = claims[default("auth_regions_claim")]
    assert regions["protocolMapper"] == "oidc-usermodel-attribute-mapper"
    assert regions["config"]["user.attribute"] == "kumkm_regions"
    assert regions["config"]["multivalued"] == "true"
    org = claims[default("auth_org_claim")]
    assert org["config"]["user.attribute"] == "kumkm_org"
    assert org["config"]["multivalued"] == "false"
    kind = claims[default("auth_kind_claim")]
    assert kind["protocolMapper"] == "oidc-hardcoded-claim-mapper"
    assert kind["config"]["claim.value"] == ("service" if client["serviceAccountsEnabled"] else "person")
    assert {"preferred_username", "name"} <= claims.keys()


def test_the_default_scope_of_new_clients_makes_person_tokens() -> None:
    defaults = REALM["defaultDefaultClientScopes"]
    assert {"basic", "kumkm", "kumkm-person"} <= set(defaults)
    kinds = [
        m["config"]["claim.value"]
        for name in defaults
        for m in scopes()[name].get("protocolMappers", [])
        if m["config"].get("claim.name") == default("auth_kind_claim")
    ]
    assert kinds == ["person"]


def test_the_realm_roles_are_the_role_vocabulary() -> None:
    assert {role["name"] for role in REALM["roles"]["realm"]} == ALL_ROLES


@pytest.mark.parametrize("realm", [REALM, TEST_REALM], ids=["demo", "test"])
def test_every_role_given_to_a_user_exists(realm: dict[str, Any]) -> None:
    for user in realm["users"]:
        assert set(user.get("realmRoles", [])) <= ALL_ROLES, user["username"]


def test_the_demo_people_have_their_roles_regions_organisation_and_password() -> None:
    people = {name: user for name, user in users().items() if "serviceAccountClientId" not in user}
    assert people.keys() == DEMO_PEOPLE.keys()
    for name, (role, regions, org) in DEMO_PEOPLE.items():
        user = people[name]
        assert user["enabled"] is True
        assert user["realmRoles"] == [role], name
        assert user["attributes"]["kumkm_regions"] == regions, name
        assert user["attributes"]["kumkm_org"] == [org], name
        passwords = [c["value"] for c in user["credentials"] if c["type"] == "password"]
        assert passwords == ["kumkm-demo"], name
        assert user["firstName"], name


def test_the_integrator_service_account() -> None:
    client = clients()["integrator-demo"]
    assert client["publicClient"] is False
    assert client["serviceAccountsEnabled"] is True
    assert client["secret"]
    assert client["standardFlowEnabled"] is False
    assert client["directAccessGrantsEnabled"] is False
    account = users()["service-account-integrator-demo"]
    assert account["serviceAccountClientId"] == "integrator-demo"
    assert account["realmRoles"] == [INTEGRATOR]
    assert account["attributes"] == {"kumkm_regions": ["national"], "kumkm_org": ["integrator-demo"]}
    assert "kumkm-person" not in client["defaultClientScopes"]


def test_the_console_and_the_cli_clients() -> None:
    console, cli = clients()["kumkm-console"], clients()["kumkm-cli"]
    assert console["publicClient"] is True
    assert console["standardFlowEnabled"] is True
    assert console["directAccessGrantsEnabled"] is False
    assert console["implicitFlowEnabled"] is False
    assert console["attributes"]["pkce.code.challenge.method"] == "S256"
    assert console["redirectUris"]
    assert cli["publicClient"] is True
    assert cli["standardFlowEnabled"] is False
    assert cli["directAccessGrantsEnabled"] is True
    assert cli["attributes"]["oauth2.device.authorization.grant.enabled"] == "true"


def test_the_user_profile_declares_the_platform_attributes() -> None:
    # Keycloak 24+ hides attributes its user profile does not declare from mappers and the admin console.
    (component,) = REALM["components"]["org.keycloak.userprofile.UserProfileProvider"]
    profile = json.loads(component["config"]["kc.user.profile.config"][0])
    attributes = {attribute["name"]: attribute for attribute in profile["attributes"]}
    assert attributes["kumkm_regions"]["multivalued"] is True
    assert attributes["kumkm_org"]["multivalued"] is False


def test_the_test_users() -> None:
    test_users = users(TEST_REALM)
    assert set(test_users["it-all"]["realmRoles"]) == ALL_ROLES
    assert test_users["it-all"]["attributes"] == {"kumkm_regions": ["national"], "kumkm_org": ["it"]}
    assert test_users["it-officer-2"]["realmRoles"] == ["loans-officer"]
    assert test_users["it-officer-2"]["attributes"]["kumkm_regions"] == [BEKASI]
    assert test_users["it-supervisor-2"]["realmRoles"] == ["loans-supervisor"]
    assert test_users["it-supervisor-2"]["attributes"]["kumkm_regions"] == ["national"]
    assert test_users["it-nobody"]["realmRoles"] == []
    assert not users().keys() & test_users.keys(), "test users never shadow demo users"


def test_the_provider_lockfile_names_no_host() -> None:
    lock = (PROVIDER_DIR / "package-lock.json").read_text()
    assert "://" not in lock
    assert '"resolved"' not in lock
    assert (PROVIDER_DIR / ".npmrc").read_text().strip() == "omit-lockfile-registry-resolved=true"
    assert json.loads(lock)["packages"]["node_modules/oidc-provider"]["version"].startswith("9.")
