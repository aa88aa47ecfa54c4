"""Access tokens, against the real OpenID provider and a real service: what is accepted and what is not."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import jwt
import pytest

from kumkm_shared.testing.identity import identity
from tests.integration.auth.conftest import (
    fresh,
    real_claims,
    signed_by_provider,
    signed_by_stranger,
    unsigned,
)

if TYPE_CHECKING:
    import httpx

    from kumkm_shared.testing.harness import ServiceHarness

pytestmark = pytest.mark.integration

ROUTE = "/restructurings"  # loans.read: officers and supervisors


async def call(service: ServiceHarness, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await service.anonymous().get(ROUTE, headers=headers)


async def test_a_real_token_of_an_officer_is_accepted(service: ServiceHarness) -> None:
    response = await call(service, identity().token("officer.bekasi"))
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"]


async def test_no_token_is_401_with_a_bearer_challenge(service: ServiceHarness) -> None:
    response = await call(service, None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="kumkm"'
    assert response.json()["error"] == "unauthenticated"


async def test_an_unknown_path_without_a_token_is_401_not_404(service: ServiceHarness) -> None:
    response = await service.anonymous().get("/no/such/route")
    assert response.status_code == 401


async def test_health_and_metrics_need_no_token(service: ServiceHarness) -> None:
    anonymous = service.anonymous()
    assert (await anonymous.get("/health/live")).status_code == 200
    assert (await anonymous.get("/metrics")).status_code == 200


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("garbage", "not a signed JWT"),
        ("expired", "expired"),
        ("not yet valid", "not valid yet"),
        ("wrong audience", "audience"),
        ("wrong issuer", "another issuer"),
        ("unknown signing key", "does not publish"),
        ("alg none", "algorithm 'none'"),
        ("alg HS256 keyed with the public key", "algorithm 'HS256'"),
        ("tampered claims", "signature"),
        ("no subject", "sub"),
        ("an ID token, not an access token", "not an access token"),
    ],
)
async def test_a_bad_token_is_401_invalid_token_naming_why(
    service: ServiceHarness, case: str, reason: str
) -> None:
    claims = real_claims()
    now = int(time.time())
    tokens = {
        "garbage": lambda: "not-a-token",
        "expired": lambda: signed_by_provider(fresh(claims, iat=now - 7200, exp=now - 3600)),
        "not yet valid": lambda: signed_by_provider(fresh(claims, nbf=now + 3600)),
        "wrong audience": lambda: signed_by_provider(fresh(claims, aud="someone-else")),
        "wrong issuer": lambda: signed_by_provider(fresh(claims, iss="http://127.0.0.1:1/evil")),
        "unknown signing key": lambda: signed_by_stranger(fresh(claims)),
        "alg none": lambda: unsigned(fresh(claims)),
        "alg HS256 keyed with the public key": lambda: jwt.encode(
            fresh(claims), b"public-key-as-secret-" * 2, algorithm="HS256", headers={"kid": "x"}
        ),
        "tampered claims": lambda: _tampered(identity().token("officer.bekasi")),
        "no subject": lambda: signed_by_provider({k: v for k, v in fresh(claims).items() if k != "sub"}),
        "an ID token, not an access token": lambda: signed_by_provider(fresh(claims, typ="ID")),
    }
    response = await call(service, tokens[case]())
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="kumkm", error="invalid_token"')
    assert reason in response.json()["message"]


def _tampered(token: str) -> str:
    """A real token whose claims were changed (more roles) after signing: the signature no longer matches."""
    header, _, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["kumkm_roles"] = ["operator", "auditor", "loans-supervisor"]
    forged = jwt.encode(claims, key=None, algorithm="none").split(".")[1]
    return f"{header}.{forged}.{signature}"


async def test_a_token_signed_by_the_provider_with_the_right_claims_passes(service: ServiceHarness) -> None:
    """The hand-made tokens above fail for the one reason each names: with nothing changed, one passes."""
    response = await call(service, signed_by_provider(fresh(real_claims())))
    assert response.status_code == 200, response.text


async def test_a_rotated_key_is_accepted_at_once(service: ServiceHarness) -> None:
    before = identity().token("officer.bekasi")
    assert (await call(service, before)).status_code == 200  # the service now holds the old key only
    new_kid = identity().rotate_keys()
    after = identity().token("officer.bekasi")
    assert jwt.get_unverified_header(after)["kid"] == new_kid
    assert (await call(service, after)).status_code == 200  # unknown kid: the JWKS is fetched again
    assert (await call(service, before)).status_code == 200  # the old key is still published


async def test_a_missing_permission_is_403_naming_it(service: ServiceHarness) -> None:
    response = await service.client("curator.bekasi").get(ROUTE)
    assert response.status_code == 403
    body = response.json()
    assert body["permission"] == "loans.read"
    assert "loans.read" in body["message"]
