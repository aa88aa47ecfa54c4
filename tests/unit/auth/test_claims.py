"""From verified claims to the actor: roles, regions, organisation and kind, by configured claim names."""

from __future__ import annotations

from typing import Any

import pytest

from kumkm_shared.auth.verify import ClaimNames, InvalidToken, TokenVerifier


def verifier(claims: ClaimNames | None = None) -> TokenVerifier:
    return TokenVerifier("http://issuer.test/", "kumkm", claims=claims)


def test_the_actor_carries_what_the_token_says() -> None:
    actor = verifier().actor(
        {
            "sub": "officer.bekasi",
            "preferred_username": "officer.bekasi",
            "kumkm_roles": ["loans-officer"],
            "kumkm_regions": ["Jawa Barat/Kota Bekasi"],
            "kumkm_org": "lpdb-kumkm",
            "kumkm_kind": "person",
        }
    )
    assert actor.subject == "officer.bekasi"
    assert actor.roles == frozenset({"loans-officer"})
    assert actor.organisation == "lpdb-kumkm"
    assert actor.kind == "person"
    assert actor.scope.allows("Jawa Barat", "Kota Bekasi")
    assert not actor.scope.allows("Jawa Timur", "Kota Surabaya")


def test_claim_names_are_configuration_and_may_be_nested() -> None:
    names = ClaimNames(roles="realm_access.roles", regions="attrs.regions", organisation="org", kind="typ")
    actor = verifier(names).actor(
        {
            "sub": "svc",
            "realm_access": {"roles": ["integrator"]},
            "attrs": {"regions": "national"},
            "org": ["integrator-demo"],
            "typ": "service",
        }
    )
    assert actor.roles == frozenset({"integrator"})
    assert actor.scope.national
    assert actor.organisation == "integrator-demo"
    assert actor.kind == "service"


def test_no_roles_and_no_regions_claim_grant_nothing() -> None:
    actor = verifier().actor({"sub": "nobody"})
    assert actor.roles == frozenset()
    assert actor.scope.empty


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": ""}, "no subject"),
        ({"sub": "x", "kumkm_roles": [1]}, "kumkm_roles"),
        ({"sub": "x", "kumkm_regions": ["A/B/C"]}, "kumkm_regions"),
        ({"sub": "x", "kumkm_org": {"a": 1}}, "kumkm_org"),
        # Review 12, 7c: the organisation is a mandate's KV key and a subject token: an organisation id only.
        ({"sub": "x", "kumkm_org": "bank.bjb"}, "kumkm_org .* not an organisation id"),
        ({"sub": "x", "kumkm_org": "*"}, "kumkm_org .* not an organisation id"),
        ({"sub": "x", "kumkm_org": ">"}, "kumkm_org .* not an organisation id"),
        ({"sub": "x", "kumkm_org": "Bank BJB"}, "kumkm_org .* not an organisation id"),
        ({"sub": "x", "kumkm_org": ["a-b", "c-d"]}, "kumkm_org"),
    ],
)
def test_malformed_claims_refuse_the_token_naming_the_claim(claims: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidToken, match=reason):
        verifier().actor(claims)


def test_symmetric_or_none_algorithms_can_never_be_configured() -> None:
    for alg in ("none", "HS256"):
        with pytest.raises(ValueError, match="asymmetric"):
            TokenVerifier("http://issuer.test", "kumkm", algorithms=[alg])
