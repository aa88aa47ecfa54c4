# The embedded OpenID provider, for real: discovery, every grant the platform uses (password, client
# credentials, device code, authorization code with PKCE, refresh), its login pages, and key rotation.
# Tokens are verified with PyJWT against the provider's JWKS, as services verify them.
from __future__ import annotations

import base64
import hashlib
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import jwt
import pytest

from kumkm_shared.auth import client as oidc
from kumkm_shared.auth.roles import ALL_ROLES, INTEGRATOR, LOANS_OFFICER
from kumkm_shared.servers.oidc import DEFAULT_REALM, EmbeddedIdentityProvider
from kumkm_shared.testing.identity import TEST_REALM, TestIdentity
from tests.support.provider_pages import submit

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

CONSOLE_REDIRECT = "http://127.0.0.1:8000/callback"
CONTRACT_CLAIMS = {
    "iss", "aud", "sub", "exp", "iat", "client_id", "azp", "preferred_username", "name",
    "kumkm_roles", "kumkm_regions", "kumkm_org", "kumkm_kind",
}  # fmt: skip


def verified(token: str, issuer: str) -> dict[str, Any]:
    """The claims of an access token, checked the way services check them (signature by kid, iss, aud)."""
    jwks = jwt.PyJWKClient(f"{issuer}/jwks", cache_keys=False)
    key = jwks.get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=["RS256"], audience="kumkm", issuer=issuer, options={"require": ["exp", "iat"]}
    )
    return claims


async def follow_within(http: httpx.AsyncClient, response: httpx.Response, issuer: str) -> httpx.Response:
    """Follow redirects while they stay on the provider (the last one may leave for a client)."""
    while response.is_redirect:
        location = urljoin(str(response.url), response.headers["location"])
        if not location.startswith(issuer):
            return response
        response = await http.get(location)
    return response


async def test_discovery_names_every_grant_and_the_jwks(identity: TestIdentity) -> None:
    found = await oidc.discover(identity.issuer)
    document = identity.provider.discovery()
    assert found.issuer == identity.issuer == document["issuer"]
    assert set(document["grant_types_supported"]) >= {
        "authorization_code", "refresh_token", "client_credentials", "password",
        "urn:ietf:params:oauth:grant-type:device_code",
    }  # fmt: skip
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert found.device_authorization_endpoint is not None
    async with httpx.AsyncClient() as http:
        keys = (await http.get(found.jwks_uri)).json()["keys"]
    assert keys[0]["kid"] == identity.provider.signing_kid
    assert all("d" not in key for key in keys), "the JWKS publishes private key material"


async def test_password_grant_gives_the_contract_claims(identity: TestIdentity) -> None:
    tokens = await oidc.password_token(identity.issuer, "kumkm-cli", "officer.bekasi", "kumkm-demo")
    assert "kumkm-demo" not in repr(tokens)
    assert tokens.bearer not in repr(tokens)
    assert jwt.get_unverified_header(tokens.bearer)["kid"] == identity.provider.signing_kid
    claims = verified(tokens.bearer, identity.issuer)
    assert set(claims) >= CONTRACT_CLAIMS
    assert claims["aud"] == "kumkm"
    assert claims["sub"] == "officer.bekasi"
    assert claims["client_id"] == claims["azp"] == "kumkm-cli"
    assert claims["preferred_username"] == "officer.bekasi"
    assert claims["name"] == "Officer Bekasi"
    assert claims["kumkm_roles"] == [LOANS_OFFICER]
    assert claims["kumkm_regions"] == ["Jawa Barat/Kota Bekasi"]
    assert claims["kumkm_org"] == "lpdb-kumkm"
    assert claims["kumkm_kind"] == "person"
    assert "email" not in claims, "the access token carries only the contract's claims"
    assert tokens.refresh_token is not None
    assert tokens.id_token is not None

    renewed = await oidc.refresh(identity.issuer, "kumkm-cli", tokens.refresh_token)
    assert verified(renewed.bearer, identity.issuer)["kumkm_roles"] == [LOANS_OFFICER]


async def test_test_users_and_the_cached_helpers(identity: TestIdentity) -> None:
    everything = verified(identity.token("it-all"), identity.issuer)
    assert set(everything["kumkm_roles"]) == ALL_ROLES
    assert everything["kumkm_regions"] == ["national"]
    assert everything["kumkm_org"] == "it"
    nobody = verified(identity.token("it-nobody"), identity.issuer)
    assert "kumkm_roles" not in nobody
    assert "kumkm_regions" not in nobody
    assert identity.token("it-all") == identity.token("it-all"), "tokens are cached"
    assert identity.headers("it-officer-2") == {"Authorization": f"Bearer {identity.token('it-officer-2')}"}
    with pytest.raises(KeyError, match="no user 'nobody-at-all'"):
        identity.token("nobody-at-all")


async def test_wrong_password_is_refused_naming_the_user_not_the_password(identity: TestIdentity) -> None:
    with pytest.raises(oidc.TokenError) as refused:
        await oidc.password_token(identity.issuer, "kumkm-cli", "officer.bekasi", "not-the-password")
    assert refused.value.error == "invalid_grant"
    assert "officer.bekasi" in str(refused.value)
    assert "Invalid user credentials" in str(refused.value)
    assert "not-the-password" not in str(refused.value)
    log = identity.provider.log_path.read_text()
    assert "not-the-password" not in log
    assert "kumkm-demo" not in log


async def test_client_credentials_give_a_service_token(identity: TestIdentity) -> None:
    claims = verified(identity.service_token("integrator-demo"), identity.issuer)
    assert claims["kumkm_kind"] == "service"
    assert claims["sub"] == "service-account-integrator-demo"
    assert claims["client_id"] == "integrator-demo"
    assert claims["kumkm_roles"] == [INTEGRATOR]
    assert claims["kumkm_regions"] == ["national"]
    assert claims["kumkm_org"] == "integrator-demo"
    assert claims["aud"] == "kumkm"
    with pytest.raises(oidc.TokenError, match="invalid_client"):
        await oidc.client_credentials_token(identity.issuer, "integrator-demo", "wrong-secret")


async def test_password_grant_refused_for_a_client_without_direct_access_grants(
    identity: TestIdentity,
) -> None:
    with pytest.raises(oidc.TokenError, match="not allowed for this client") as refused:
        await oidc.password_token(identity.issuer, "kumkm-console", "officer.bekasi", "kumkm-demo")
    assert refused.value.error in {"invalid_request", "unauthorized_client"}


async def test_device_flow_through_the_provider_pages(identity: TestIdentity) -> None:
    started = await oidc.start_device_login(identity.issuer, "kumkm-cli")
    async with httpx.AsyncClient(follow_redirects=True) as browser:
        page = await browser.get(started.verification_uri)
        assert page.status_code == 200
        page = await submit(browser, page, "op.deviceInputForm", user_code=started.user_code)
        assert started.user_code in page.text
        page = await submit(browser, page, "op.deviceConfirmForm")
        assert "/interaction/" in str(page.url)
        wrong = await submit(browser, page, "login", username="supervisor.bekasi", password="nope")
        assert wrong.status_code == 401
        assert "Invalid username or password" in wrong.text
        page = await submit(browser, wrong, "login", username="supervisor.bekasi", password="kumkm-demo")
        assert page.status_code == 200, page.text
        assert "signed in" in page.text

    async def no_wait(_seconds: float) -> None:
        return None

    tokens = await oidc.poll_device_login(identity.issuer, "kumkm-cli", started, sleep=no_wait)
    claims = verified(tokens.bearer, identity.issuer)
    assert claims["sub"] == "supervisor.bekasi"
    assert claims["kumkm_roles"] == ["loans-supervisor"]
    assert claims["kumkm_kind"] == "person"


async def test_device_flow_polling_before_sign_in_is_pending(identity: TestIdentity) -> None:
    started = await oidc.start_device_login(identity.issuer, "kumkm-cli")
    with pytest.raises(oidc.TokenError) as pending:
        await oidc._token_request(
            identity.issuer,
            {
                "grant_type": oidc.DEVICE_GRANT,
                "client_id": "kumkm-cli",
                "device_code": started.device_code.get_secret_value(),
            },
            what="poll",
        )
    assert pending.value.error == "authorization_pending"


async def published_kids(issuer: str) -> list[str]:
    async with httpx.AsyncClient() as http:
        return [key["kid"] for key in (await http.get(f"{issuer}/jwks")).json()["keys"]]


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def test_authorization_code_with_pkce_through_the_login_page(identity: TestIdentity) -> None:
    found = await oidc.discover(identity.issuer)
    assert found.authorization_endpoint is not None
    verifier, challenge = pkce()
    params = {
        "client_id": "kumkm-console",
        "response_type": "code",
        "redirect_uri": CONSOLE_REDIRECT,
        "scope": "openid profile",
        "state": "s-1",
        "nonce": "n-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    async with httpx.AsyncClient(follow_redirects=False) as browser:
        page = await follow_within(
            browser, await browser.get(found.authorization_endpoint, params=params), identity.issuer
        )
        assert page.status_code == 200
        assert "/interaction/" in str(page.url)
        wrong = await submit(browser, page, "login", username="curator.bekasi", password="kumkm-dem0")
        assert wrong.status_code == 401
        done = await follow_within(
            browser,
            await submit(browser, wrong, "login", username="curator.bekasi", password="kumkm-demo"),
            identity.issuer,
        )
        location = done.headers["location"]
        assert location.startswith(CONSOLE_REDIRECT), location
        query = parse_qs(urlsplit(location).query)
        assert query["state"] == ["s-1"]
        form = {
            "grant_type": "authorization_code",
            "client_id": "kumkm-console",
            "code": query["code"][0],
            "redirect_uri": CONSOLE_REDIRECT,
            "code_verifier": verifier,
        }
        answer = await browser.post(found.token_endpoint, data=form)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        replay = await browser.post(found.token_endpoint, data=form)
        assert replay.status_code == 400, "an authorization code works once"

    claims = verified(body["access_token"], identity.issuer)
    assert claims["sub"] == "curator.bekasi"
    assert claims["client_id"] == "kumkm-console"
    assert claims["kumkm_roles"] == ["catalog-curator"]
    assert claims["kumkm_org"] == "lkpp"
    id_claims = jwt.decode(
        body["id_token"],
        jwt.PyJWKClient(found.jwks_uri).get_signing_key_from_jwt(body["id_token"]),
        algorithms=["RS256"],
        audience="kumkm-console",
        issuer=identity.issuer,
    )
    assert id_claims["nonce"] == "n-1"
    assert id_claims["preferred_username"] == "curator.bekasi"
    assert id_claims["kumkm_roles"] == ["catalog-curator"]


async def test_public_client_must_use_pkce(identity: TestIdentity) -> None:
    found = await oidc.discover(identity.issuer)
    assert found.authorization_endpoint is not None
    params = {
        "client_id": "kumkm-console",
        "response_type": "code",
        "redirect_uri": CONSOLE_REDIRECT,
        "scope": "openid",
    }
    async with httpx.AsyncClient() as browser:
        answer = await browser.get(found.authorization_endpoint, params=params)
    assert answer.is_redirect
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["error"] == ["invalid_request"]
    assert "PKCE" in query["error_description"][0]


async def test_rotate_keys_changes_the_kid_and_keeps_the_old_key(server_data_dir: Path) -> None:
    with EmbeddedIdentityProvider(server_data_dir, [DEFAULT_REALM, TEST_REALM]) as provider:
        before = await oidc.password_token(provider.issuer, "kumkm-cli", "it-all", "kumkm-test")
        old_kid = provider.signing_kid
        port = provider.port
        new_kid = provider.rotate_keys()
        assert new_kid != old_kid
        assert provider.port == port
        assert provider.running
        kids = await published_kids(provider.issuer)
        assert kids == [new_kid, old_kid]
        after = await oidc.password_token(provider.issuer, "kumkm-cli", "it-all", "kumkm-test")
        assert jwt.get_unverified_header(after.bearer)["kid"] == new_kid
        assert verified(after.bearer, provider.issuer)["sub"] == "it-all"
        assert verified(before.bearer, provider.issuer)["sub"] == "it-all", "the old key still verifies"
        provider.rotate_keys()
        kids = await published_kids(provider.issuer)
        assert len(kids) == 2
        assert old_kid not in kids


async def test_an_issuer_path_serves_everything_under_it(server_data_dir: Path) -> None:
    with EmbeddedIdentityProvider(server_data_dir, issuer_path="/realms/kumkm") as provider:
        assert provider.issuer.endswith("/realms/kumkm")
        found = await oidc.discover(provider.issuer)
        assert found.token_endpoint == f"{provider.issuer}/token"
        tokens = await oidc.password_token(provider.issuer, "kumkm-cli", "ministry", "kumkm-demo")
        assert verified(tokens.bearer, provider.issuer)["kumkm_roles"] == ["monitoring-viewer"]
        started = await oidc.start_device_login(provider.issuer, "kumkm-cli")
        assert started.verification_uri.startswith(provider.issuer)
